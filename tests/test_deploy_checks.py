"""`make check-deploy` and `make test-aws`: the checks run before and against a real deploy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import definition, validate_definition

ROOT = Path(__file__).resolve().parent.parent


def test_sample_definition_fills_every_placeholder() -> None:
    """Step Functions gets a complete definition: every ${Name} filled, valid JSON, every state there."""
    rendered = validate_definition.sample_definition()
    assert "${" not in rendered
    assert set(json.loads(rendered)["States"]) == set(definition.states())


def test_validation_without_credentials_says_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """No AWS credentials: the online check says it was skipped and does not fail the offline ones."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert validate_definition.main() == 0
    assert "skipped (no AWS credentials)" in capsys.readouterr().out


def test_live_suite_runs_only_when_asked() -> None:
    """tests/live deploys to AWS: `pytest` (make test) never collects it; naming its path (make test-aws) does."""
    def collected(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               *args], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout

    assert "tests/live/" not in collected()
    by_path = collected("tests/live")
    assert "test_aws_hello_world_ends_terminated_ok" in by_path
    assert "test_aws_spot_interruption_moves_the_job_to_a_new_instance" in by_path
