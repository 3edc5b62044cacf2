"""Exports of the platform's services for other cluster engines, one module per format, each
rendering `orchestration.workload.Workload`s: `compose` (a Compose file with `deploy:`, what
`docker stack deploy` runs) and `kubernetes` (Deployment, Service, HorizontalPodAutoscaler)."""
