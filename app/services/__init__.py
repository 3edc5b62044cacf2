"""Platform services over the engines: the deploy flow, the service manager, ports, routing and per-service settings."""
