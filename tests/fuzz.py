"""Fuzz the API over HTTP from its OpenAPI document (schemathesis): no 5xx, every error explained, nothing written.

``tests/test_fuzz.py`` runs a few hundred requests in CI; the long campaign is
``FUZZ_REQUESTS=5000 .venv/bin/pytest tests/test_fuzz.py -s``.

Every generated job is moved 30 days ahead and cancelled once created, and
every generated schedule is created or left paused, so no fuzzed command ever
runs on this machine (the local instance emulator would run it as a plain
process).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

SPEC = Path(__file__).resolve().parent.parent / "runtime" / "chalicelib" / "openapi.json"


@dataclass
class Report:
    """What the campaign saw."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    schedules: set[str] = field(default_factory=set)  # the schedules created (all paused)

    def record(self, case: Any, response: requests.Response) -> None:
        """Count the answer and keep any that breaks a rule."""
        self.requests += 1
        self.by_status[response.status_code] += 1
        where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}"
        if response.status_code >= 500:
            self.server_errors.append(where)
        elif response.status_code >= 400 and not _explained(response):
            self.unexplained.append(where)

    def summary(self) -> dict[str, Any]:
        """Figures for a note or a log."""
        return {"requests": self.requests, "5xx": len(self.server_errors), "unexplained_errors": len(self.unexplained),
                "by_status": dict(sorted(self.by_status.items())), "jobs_created": len(self.created)}


def _explained(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("Message"), str) and bool(body["Message"])


def campaign(api_url: str, total: int, seed: int = 0) -> Report:
    """About ``total`` generated requests over every operation, valid and invalid ones."""
    schema = schemathesis.openapi.from_dict(json.loads(SPEC.read_text()))
    operations = [result.ok() for result in schema.get_all_operations()]
    report, session = Report(), requests.Session()
    known = [_seed_job(session, api_url, report)]
    known_schedules = [_seed_schedule(session, api_url, report)]
    per_run = max(1, total // (len(operations) * 2))
    rng = random.Random(seed)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, per_run, api_url, session, report, known, rng, known_schedules)
    return report


def _fuzz(operation: Any, mode: GenerationMode, examples: int, api_url: str, session: requests.Session,
          report: Report, known: list[str], rng: random.Random, known_schedules: list[str]) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        _tame(case, known, rng)
        _tame_schedule(case, known_schedules, rng)
        response = case.call(base_url=api_url, session=session, timeout=30)
        report.record(case, response)
        if case.method == "POST" and case.path == "/jobs" and response.status_code in (200, 201):
            job_id = response.json()["jobId"]
            report.created.add(job_id)
            session.post(f"{api_url}/jobs/{job_id}/cancel", timeout=30)
        if case.method == "POST" and case.path == "/schedules" and response.status_code == 201:
            report.schedules.add(response.json()["scheduleId"])

    one()


def _tame(case: Any, known: list[str], rng: random.Random) -> None:
    # Deeper paths than 404: half the time the job exists.
    if case.path_parameters and "jobId" in case.path_parameters and rng.random() < 0.5:
        case.path_parameters["jobId"] = rng.choice(known)
    # Nothing fuzzed may run: jobs wait 30 days (and are cancelled once created).
    if case.path == "/jobs" and case.method == "POST" and isinstance(case.body, dict):
        case.body["scheduledAt"] = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tame_schedule(case: Any, known: list[str], rng: random.Random) -> None:
    # Half the time the schedule exists; a created or changed schedule stays paused (it never fires a job).
    if case.path_parameters and "scheduleId" in case.path_parameters and rng.random() < 0.5:
        case.path_parameters["scheduleId"] = rng.choice(known)
    if case.path.startswith("/schedules") and case.method in ("POST", "PATCH") and isinstance(case.body, dict):
        case.body["enabled"] = False


def _seed_schedule(session: requests.Session, api_url: str, report: Report) -> str:
    response = session.post(f"{api_url}/schedules", json={"expression": "rate(1 day)", "enabled": False,
                                                          "job": {"image": "busybox:1.36"}}, timeout=30)
    response.raise_for_status()
    schedule_id = str(response.json()["scheduleId"])
    report.schedules.add(schedule_id)
    return schedule_id


def _seed_job(session: requests.Session, api_url: str, report: Report) -> str:
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = session.post(f"{api_url}/jobs", json={"image": "busybox:1.36", "scheduledAt": later}, timeout=30)
    response.raise_for_status()
    job_id = str(response.json()["jobId"])
    report.created.add(job_id)
    return job_id


def stored_jobs(aws_endpoint: str) -> set[str]:
    """Every job id in the local table (a scan is fine for a test table)."""
    ddb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1",
                       aws_access_key_id="any", aws_secret_access_key="any")
    table = ddb.list_tables()["TableNames"][0]
    return {item["jobId"]["S"] for page in ddb.get_paginator("scan").paginate(TableName=table)
            for item in page["Items"]}


def executions(aws_endpoint: str) -> set[str]:
    """Every execution's name (= its job id) in the local Step Functions."""
    sfn = boto3.client("stepfunctions", endpoint_url=aws_endpoint, region_name="us-east-1",
                       aws_access_key_id="any", aws_secret_access_key="any")
    names: set[str] = set()
    for machine in sfn.list_state_machines()["stateMachines"]:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"]):
            names |= {e["name"] for e in page["executions"]}
    return names
