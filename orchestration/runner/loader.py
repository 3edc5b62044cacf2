"""Importing an algorithm package's entrypoint and running its setup (DESIGN §2).

The entrypoint "module:attr" names either
- a class: instantiated without arguments, then `setup()` is called if it has one; its bound
  `predict(inputs, **params)` is what the runner calls;
- a function `predict(inputs, **params)`: the module's own `setup()` function, if any, is called once.
Any exception while importing or in setup propagates to the caller (the runner reports SETUP_FAILED).
"""
from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PredictFn = Callable[..., Any]


class EntrypointError(Exception):
    """The entrypoint cannot be found or is not callable."""


def import_entrypoint(package_dir: Path, entrypoint: str) -> tuple[Any, Any]:
    """(module, attribute) named by `entrypoint`, importing from `package_dir` first."""
    module_name, _, attr = entrypoint.partition(":")
    path = str(Path(package_dir).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    module = importlib.import_module(module_name)
    try:
        return module, getattr(module, attr)
    except AttributeError:
        raise EntrypointError(f"{module_name}.py has no attribute {attr!r} (entrypoint {entrypoint!r})") from None


def load_predict(package_dir: Path, entrypoint: str) -> PredictFn:
    """Import the entrypoint, run its setup once and return the predict callable."""
    module, target = import_entrypoint(package_dir, entrypoint)
    if inspect.isclass(target):
        instance = target()
        if callable(getattr(instance, "setup", None)):
            instance.setup()
        predict = getattr(instance, "predict", None)
        if not callable(predict):
            raise EntrypointError(f"{target.__name__} has no predict(inputs, **params) method")
        return predict
    if not callable(target):
        raise EntrypointError(f"entrypoint {entrypoint!r} is a {type(target).__name__}, not a class or function")
    setup = getattr(module, "setup", None)
    if callable(setup) and setup is not target:
        setup()
    return target
