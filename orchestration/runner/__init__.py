"""The host process inside every service (DESIGN §3): loads an algorithm package and serves
/predict, /health, /info and /metrics, and the Open Inference Protocol v2 (/v2/...). Self-contained (stdlib, pydantic, PyYAML, numpy, OpenCV,
starlette, uvicorn, prometheus-client): it is copied into containers and must not import `app`.
Only contract.py (the deploy smoke test, run by the platform) imports `app`."""

# the exit status when setup() failed and ALGOSTAGE_EXIT_ON_SETUP_FAILURE=1 (a cluster's tasks)
SETUP_FAILED_EXIT = 3
