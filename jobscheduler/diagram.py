"""What the README draws from the code: the workflow as a Mermaid flowchart (from the ASL file) and
the table of statuses (from ``chalicelib.statuses``).

``python -m jobscheduler.diagram`` prints the flowchart; ``python -m jobscheduler.diagram --write``
refreshes both README blocks between their markers. A test fails when they drift.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as `python -m jobscheduler.diagram`, only the project is on sys.path: add runtime/ (for `chalicelib`).
if str(ROOT / "runtime") not in sys.path:
    sys.path.insert(0, str(ROOT / "runtime"))

from infra import definition  # noqa: E402

README = ROOT / "README.md"
BEGIN, END = "<!-- workflow-diagram:begin -->", "<!-- workflow-diagram:end -->"
STATUSES_BEGIN, STATUSES_END = "<!-- statuses-table:begin -->", "<!-- statuses-table:end -->"


def mermaid() -> str:
    """The flowchart: one node per state, one edge per Next, Default, Choice and Catch."""
    states = definition.states()
    lines = ["flowchart TD"]
    for name, state in states.items():
        lines.append(f"    {node_id(name)}{_shape(name, state)}")
    for name, state in states.items():
        lines += [f"    {node_id(name)} {arrow} {node_id(target)}" for arrow, target in _edges(state)]
    return "\n".join(lines)


def block() -> str:
    """The README block, markers included."""
    return f"{BEGIN}\n```mermaid\n{mermaid()}\n```\n{END}"


def statuses_table() -> str:
    """Each status, what it means and what it may become (``statuses.TRANSITIONS``), as Markdown."""
    from chalicelib import statuses  # the runtime's, absent from an installed package: the console needs only mermaid()

    lines = ["| status | means | may become |", "|---|---|---|"]
    for status in statuses.STATUSES:
        lines.append(f"| `{status}` | {statuses.MEANINGS[status]} | {_may_become(status)} |")
    ends = ", ".join(f"`{s}`" for s in sorted(statuses.TERMINAL))
    lines += ["", f"Terminal: {ends}. A terminal status never changes; any other may end in any of them "
                  "(the workflow's last write, the clean-up handlers). Every status change is a conditional "
                  "write naming the statuses it may leave, checked against this table."]
    return "\n".join(lines)


def statuses_block() -> str:
    """The README's statuses block, markers included."""
    return f"{STATUSES_BEGIN}\n{statuses_table()}\n{STATUSES_END}"


def readme_block(begin: str = BEGIN, end: str = END) -> str:
    """A block as the README has it now (the workflow diagram unless other markers are given)."""
    match = re.search(re.escape(begin) + r".*?" + re.escape(end), README.read_text(), re.S)
    return match.group(0) if match else ""


def write() -> None:
    """Refresh the README's blocks (a missing one is added at the end)."""
    text = README.read_text()
    for (begin, end), fresh in (((BEGIN, END), block()), ((STATUSES_BEGIN, STATUSES_END), statuses_block())):
        current = readme_block(begin, end)
        text = text.replace(current, fresh) if current else text + "\n" + fresh + "\n"
    README.write_text(text)


def _may_become(status: str) -> str:
    from chalicelib import statuses

    moves = statuses.TRANSITIONS[status]
    if not moves:
        return "nothing (terminal)"
    named = [f"`{s}`" for s in statuses.STATUSES if s in moves and s not in statuses.TERMINAL]
    ended = statuses.TERMINATED_AFTER.get(status)
    end = f"it ends: `{ended}` once its instance is gone" if ended else "it ends"
    return f"{', '.join(named)}; or {end}" if named else end


def node_id(name: str) -> str:
    """The flowchart's node id of a state (the console marks nodes by it)."""
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
