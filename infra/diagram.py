"""The workflow as a Mermaid flowchart, drawn from the ASL file (the README embeds it).

``python -m infra.diagram`` prints it; ``python -m infra.diagram --write``
refreshes the README block between the markers. A test fails when they drift.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from infra import definition

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- workflow-diagram:begin -->", "<!-- workflow-diagram:end -->"


def mermaid() -> str:
    """The flowchart: one node per state, one edge per Next, Default, Choice and Catch."""
    states = definition.states()
    lines = ["flowchart TD"]
    for name, state in states.items():
        lines.append(f"    {_id(name)}{_shape(name, state)}")
    for name, state in states.items():
        lines += [f"    {_id(name)} {arrow} {_id(target)}" for arrow, target in _edges(state)]
    return "\n".join(lines)


def block() -> str:
    """The README block, markers included."""
    return f"{BEGIN}\n```mermaid\n{mermaid()}\n```\n{END}"


def readme_block() -> str:
    """The block as the README has it now."""
    match = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), README.read_text(), re.S)
    return match.group(0) if match else ""


def write() -> None:
    """Refresh the README's block."""
    text = README.read_text()
    README.write_text(text.replace(readme_block(), block()) if readme_block() else text + "\n" + block() + "\n")


def _id(name: str) -> str:
    return re.sub(r"\W", "", name)


def _shape(name: str, state: dict[str, Any]) -> str:
    kind = state["Type"]
    if kind == "Choice":
        return f'{{"{name}"}}'
    if kind in ("Succeed", "Fail"):
        return f'(["{name}"])'
    if kind == "Wait":
        return f'[/"{name}"/]'
    return f'["{name}"]'


def _edges(state: dict[str, Any]) -> list[tuple[str, str]]:
    edges = [("-->", state["Next"])] if "Next" in state else []
    edges += [("-->", choice["Next"]) for choice in state.get("Choices", [])]
    if "Default" in state:
        edges.append(("-.->", state["Default"]))
    edges += [(f'-. "{"/".join(c["ErrorEquals"])}" .->', c["Next"]) for c in state.get("Catch", [])]
    return list(dict.fromkeys(edges))  # one arrow per (kind, target), in order


if __name__ == "__main__":
    if "--write" in sys.argv:
        write()
    else:
        print(mermaid())
