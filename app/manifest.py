"""The algorithm manifest, as the platform imports it. The implementation lives in
orchestration/runner/manifest.py because the runner (copied into every service) needs it too
and may not import `app`."""
from orchestration.runner.manifest import (MANIFEST_FILE, Manifest, ManifestError, ManifestProblem, ParamError,
                                           ParamSpec, ParamValidator, Resources, Task, load_manifest,
                                           parse_manifest, problems_from, validate_params)

__all__ = ["MANIFEST_FILE", "Manifest", "ManifestError", "ManifestProblem", "ParamError", "ParamSpec",
           "ParamValidator", "Resources", "Task", "load_manifest", "parse_manifest", "problems_from",
           "validate_params"]
