"""The benchmarks' targets (``bench/targets.toml``) and the verdict on each figure.

A benchmark row that carries a target's key and the figure's value is judged
here: the target's text goes in the row, and met (``True``) or missed
(``False``). ``verdicts`` gathers every target of a whole run, including
those no row reported ("not measured").
"""

from __future__ import annotations

import functools
import math
import operator
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGETS = Path(__file__).resolve().with_name("targets.toml")
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq, ">=": operator.ge, ">": operator.gt}


@dataclass(frozen=True)
class Target:
    """One judged figure: its key, what it measures, and how its value must compare to the target."""

    key: str
    figure: str
    compare: str
    target: float
    unit: str
    why: str = ""

    def met(self, value: float) -> bool:
        """Does ``value`` meet the target? A value that is not a number (a failed measurement) never does."""
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return False
        return COMPARE[self.compare](value, self.target)

    @property
    def text(self) -> str:
        """The target as the table shows it: ``<= 1.5``, ``< 700 MiB``."""
        unit = "" if self.unit in ("ratio", "") else f" {self.unit}"
        number = f"{self.target:g}" if isinstance(self.target, float) else str(self.target)
        return f"{self.compare} {number}{unit}"


def parse(document: Mapping[str, Any]) -> dict[str, Target]:
    """Targets from the parsed TOML document (``{bench: {figure: {...}}}``); a malformed one is a ValueError."""
    found: dict[str, Target] = {}
    for bench, figures in document.items():
        for name, spec in figures.items():
            key = f"{bench}.{name}"
            if spec.get("compare") not in COMPARE:
                raise ValueError(f"{key}: compare must be one of {', '.join(COMPARE)}")
            if isinstance(spec.get("target"), bool) or not isinstance(spec.get("target"), int | float):
                raise ValueError(f"{key}: target must be a number")
            unknown = set(spec) - {"figure", "compare", "target", "unit", "why"}
            if unknown:
                raise ValueError(f"{key}: unknown fields {sorted(unknown)}")
            found[key] = Target(key, str(spec.get("figure", key)), spec["compare"], spec["target"],
                                str(spec.get("unit", "")), str(spec.get("why", "")))
    return found


@functools.cache
def load(path: Path = TARGETS) -> dict[str, Target]:
    """Every target in ``path`` by key."""
    with path.open("rb") as handle:
        return parse(tomllib.load(handle))


def target(key: str) -> Target:
    """The target of ``key`` (a KeyError names a key the file does not have)."""
    targets = load()
    if key not in targets:
        raise KeyError(f"{key} is not in {TARGETS.name}")
    return targets[key]


def verdicts(rows: Iterable[Mapping[str, Any]], targets: Mapping[str, Target] | None = None) -> list[dict[str, Any]]:
    """Every target with the value a row reported for it and the verdict: met, missed, or not measured."""
    reported = {row["key"]: row.get("value") for row in rows if row.get("key")}
    out = []
    for key, goal in (load() if targets is None else targets).items():
        value = reported.get(key)
        verdict = "not measured" if key not in reported else "met" if goal.met(value) else "missed"  # type: ignore[arg-type]
        out.append({"key": key, "figure": goal.figure, "target": goal.text, "compare": goal.compare,
                    "target_value": goal.target, "unit": goal.unit, "value": value, "verdict": verdict})
    return out
