"""Generated requests over real HTTP against the local stack: a few hundred in CI.

The long campaign: ``FUZZ_REQUESTS=5000 .venv/bin/pytest tests/test_fuzz.py -s``.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.fuzz import campaign, executions, stored_jobs
from tests.test_local import stack

pytestmark = pytest.mark.slow


def test_fuzzed_requests_get_no_5xx_and_write_nothing_when_refused(stack):
    """No 5xx; every error is JSON with a message; only accepted jobs exist, each with one execution."""
    total = int(os.environ.get("FUZZ_REQUESTS", "320"))
    report = campaign(stack.api, total=total)
    print(json.dumps(report.summary()))
    assert report.requests >= total * 0.9
    assert report.server_errors == []
    assert report.unexplained == []
    assert sum(n for status, n in report.by_status.items() if 400 <= status < 500) > total // 4
    assert len(report.created) > 1  # valid bodies were generated and accepted, not only refusals
    assert stored_jobs(stack.aws) - report.created - report.schedules == set()
    assert executions(stack.aws) - report.created == set()
