"""The algorithm manifest, as the platform imports it. The implementation lives in
orchestration/runner/manifest.py because the runner (copied into every service) needs it too
and may not import `app`."""
from typing import Literal

from orchestration.runner.manifest import (MANIFEST_FILE, SCORE_KINDS, Demo, Manifest, ManifestError,
                                           ManifestProblem, ParamError, ParamSpec, ParamText, ParamValidator,
                                           Resources, ScoreSpec, Task, Texts, load_manifest, parse_manifest,
                                           problems_from, validate_params)

__all__ = ["MANIFEST_FILE", "SCORE_KINDS", "Demo", "Manifest", "ManifestError", "ManifestProblem", "ParamError",
           "ParamSpec", "ParamText", "ParamValidator", "Resources", "ScoreSpec", "Task", "Texts", "input_kind",
           "load_manifest", "parse_manifest", "problems_from", "validate_params"]


def input_kind(task: str) -> Literal["text", "image", "json"]:
    """What one input of a task is — the one rule: "text" (a str), "image" (image bytes; video
    tasks take frames) or "json" (a dict). An unknown task is "json": its inputs pass as they are."""
    try:
        return Task(task).input_kind
    except ValueError:
        return "json"
