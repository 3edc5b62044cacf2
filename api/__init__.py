"""The management API (/api/v1): a third interface beside the pages and the command line, one
core call per endpoint, the same permission checks and errors. `api.app.create_app()` builds it."""
