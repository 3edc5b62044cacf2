"""The host process inside every service (DESIGN §3): loads an algorithm package and serves
/predict, /health, /info and /metrics, and the Open Inference Protocol v2 (/v2/...). Self-contained (stdlib, pydantic, PyYAML, numpy, OpenCV,
starlette, uvicorn, prometheus-client): it is copied into containers and must not import `app`.
Only contract.py (the deploy smoke test, run by the platform) imports `app`."""
