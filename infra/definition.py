"""The job workflow's one definition, and its ``${Name}`` placeholders.

CDK deploys this file with definition substitutions; the tests and the local
stack fill the same names with :func:`render`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ASL_PATH = Path(__file__).resolve().parent / "statemachine" / "job.asl.json"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


def text() -> str:
    """The definition as written, placeholders and all."""
    return ASL_PATH.read_text()


def placeholders() -> set[str]:
    """The names the definition expects to be filled."""
    return set(_PLACEHOLDER.findall(text()))


def render(values: dict[str, str]) -> str:
    """The definition with every placeholder filled; a missing or extra name is an error."""
    missing, extra = placeholders() - set(values), set(values) - placeholders()
    if missing or extra:
        raise KeyError(f"placeholders missing {sorted(missing)}, unknown {sorted(extra)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text())


def states() -> dict[str, Any]:
    """Every state of the definition, by name."""
    return dict(json.loads(text())["States"])
