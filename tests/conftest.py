"""Fixtures: fake credentials -> ``aws`` (moto running the real workflow) -> ``api``.

The ``aws`` fixture creates the job table from the runtime's own definition and
the state machine from the one ASL file, exactly as the stack does.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import aws as runtime_aws
from chalicelib import config
from jobscheduler.local import moto_parity
from jobscheduler.local.cloud import LocalCloud
from tests.support import create_cloud

INPUT_DIR = Path(__file__).resolve().parent.parent / "input"
# moto's workflow interpreter logs every caught error at ERROR with the whole
# parse tree; the tests read outcomes from the execution history instead.
logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
moto_parity.apply()

FAST_TIMING = {
    config.POLL_SECONDS: "1",
    config.BACKOFF_SECONDS: "1",
    config.PROVISIONING_SECONDS: "3",
    config.BOOT_SECONDS: "4",
    config.STOP_GRACE_SECONDS: "1",
}


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so no test can reach a real account."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


@pytest.fixture
def stack_tag() -> str:
    """The emulated stack's tag (a module may override it: test_iam uses the synthesised stack's name)."""
    return "test-stack"


@pytest.fixture
def aws(credentials: None, stack_tag: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCloud]:
    """moto with state machine execution on: the table, launch template, subnets and workflow."""
    threads_before = set(threading.enumerate())
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        runtime_aws.reset()
        cloud = create_cloud(stack_tag=stack_tag)
        for name, value in {**cloud.runtime_environment("http://127.0.0.1:9"), **FAST_TIMING}.items():
            monkeypatch.setenv(name, value)
        yield cloud
        _stop_executions(cloud, threads_before)
        runtime_aws.reset()


def _stop_executions(cloud: LocalCloud, threads_before: set[threading.Thread]) -> None:
    """Stop the test's executions still running and wait for their threads to end.

    moto runs each execution in a thread of this process; one left running would carry on
    into the next test's fresh backend (same table name) and write a job into it.
    """
    sfn = boto3.client("stepfunctions")
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=cloud.state_machine_arn,
                                                                statusFilter="RUNNING"):
        for execution in page["executions"]:
            sfn.stop_execution(executionArn=execution["executionArn"])
    # A stopped execution ends at its next state; a task under way finishes first (milliseconds).
    # A Wait state sleeping on may not notice the stop: it is not waited for beyond the second.
    deadline = time.monotonic() + 1
    for thread in set(threading.enumerate()) - threads_before:
        target = getattr(thread, "_target", None)  # the function a running thread was started on
        if getattr(target, "__module__", "").startswith("moto.stepfunctions"):
            _join(thread, deadline)


def _join(thread: threading.Thread, deadline: float) -> None:
    """Wait for ``thread`` until ``deadline``; one still starting (listed, not yet running) is waited for too."""
    while True:
        try:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            return
        except RuntimeError:  # "cannot join thread before it is started": it is between start() and running
            if time.monotonic() >= deadline:
                return
            time.sleep(0.001)


@pytest.fixture
def api(aws: LocalCloud) -> Iterator[Client]:
    """The Chalice app, called in-process."""
    from app import app

    with Client(app) as client:
        yield client


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The CDK app synthesised once a session (tests/test_stack.py's ``Synth``), shared by every module."""
    from tests.test_stack import synthesise

    return synthesise(tmp_path_factory.mktemp("cdk.out"), {})


@pytest.fixture(scope="session")
def synth_with_choices(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app synthesised once more, with the context values of tests/test_stack.py's ``CHOICES``."""
    from tests.test_stack import CHOICES, synthesise

    return synthesise(tmp_path_factory.mktemp("cdk.out.choices"), CHOICES)


def example_bodies() -> list[Path]:
    """Every documented job body."""
    return sorted(INPUT_DIR.glob("*.json"))


def load(path: Path) -> dict:
    """A job body from input/."""
    return dict(json.loads(path.read_text()))




def pytest_configure(config: pytest.Config) -> None:
    """A fresh fault matrix table each run (the controller clears it, not the xdist workers)."""
    if not hasattr(config, "workerinput"):
        import tempfile

        from tests.test_fault_matrix import MATRIX_ENV

        handle, path = tempfile.mkstemp(prefix="fault-matrix-", suffix=".jsonl")
        os.close(handle)
        os.environ[MATRIX_ENV] = path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault matrix as a table when it ran."""
    from tests.test_fault_matrix import matrix_file

    if not matrix_file().exists() or not matrix_file().read_text():
        return
    rows = [json.loads(line) for line in matrix_file().read_text().splitlines()]
    order = ["waiting", "requesting", "launched", "running", "terminating"]
    rows.sort(key=lambda r: (order.index(r["phase"]), r["fault"]))
    terminalreporter.section(f"fault matrix: {len(rows)} scenarios")
    widths = [11, 24, 13, 18]
    terminalreporter.write_line("  ".join(h.ljust(w) for h, w in zip(
        ("phase", "fault", "status", "attempts"), widths, strict=True)) + "  reason")
    for r in rows:
        cells = (r["phase"], r["fault"], r["status"], r["attempts"])
        terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                                    + "  " + r["reason"])
