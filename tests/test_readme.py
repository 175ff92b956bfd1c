"""The README stays true to the code it describes."""

from __future__ import annotations

import re
from pathlib import Path

from infra import definition
from jobscheduler import diagram

ROOT = Path(__file__).resolve().parent.parent


def test_workflow_diagram_matches_the_asl_file():
    """The README's diagram is the one drawn from the ASL file (refresh: python -m jobscheduler.diagram --write)."""
    assert diagram.readme_block() == diagram.block()


def test_statuses_table_matches_the_statuses_module():
    """The README's statuses table is the one drawn from chalicelib.statuses (refresh: python -m jobscheduler.diagram
    --write)."""
    assert diagram.readme_block(diagram.STATUSES_BEGIN, diagram.STATUSES_END) == diagram.statuses_block()


def test_diagram_has_every_state_and_transition():
    """Every state is a node and every Next/Catch target an arrow."""
    drawn = diagram.mermaid()
    for name, state in definition.states().items():
        node = re.sub(r"\W", "", name)
        assert f"    {node}" in drawn
        if "Next" in state:
            assert f"{node} --> {re.sub(chr(92) + 'W', '', state['Next'])}" in drawn


def test_readme_commands_exist():
    """The commands the README promises are Makefile targets."""
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "lint"):
        assert re.search(rf"^{target}:", makefile, re.M), target
