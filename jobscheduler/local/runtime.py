"""The runtime (what Lambda runs), imported from ``runtime/`` as Lambda would import it.

Lambda puts the app's directory first on the path, so ``app`` and
``chalicelib`` are top-level modules; the local stack does the same, which is
how it serves the very same ``app`` object.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "runtime"


def module(name: str) -> ModuleType:
    """A runtime module by its Lambda name: ``app``, ``chalicelib.config`` ..."""
    if str(RUNTIME_DIR) not in sys.path:
        sys.path.insert(0, str(RUNTIME_DIR))
    loaded = importlib.import_module(name)
    origin = Path(loaded.__file__ or "").resolve()
    if RUNTIME_DIR not in origin.parents:
        raise ImportError(f"{name} was imported from {origin}, not from {RUNTIME_DIR}")
    return loaded


def config() -> ModuleType:
    """``chalicelib.config``: the names of the runtime's settings."""
    return module("chalicelib.config")


def statuses() -> ModuleType:
    """``chalicelib.statuses``: the job's statuses and the tags on its instances."""
    return module("chalicelib.statuses")


def app_module() -> ModuleType:
    """``runtime/app.py``: the Chalice ``app`` and the plain Lambda handlers."""
    return module("app")
