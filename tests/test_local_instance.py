"""The local stack's instance pieces run a job with secrets: the emulated instance's metadata
service serves the role's credentials, the bootstrap's signed AWS calls reach moto, and the
stand-in docker hands the values to the job.

The pieces are those ``jobscheduler local`` wires together (``metadata.py``,
``standins.py``, moto in server mode), without the rest of the stack.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from chalicelib.bootstrap import render_user_data
from jobscheduler.local import standins
from jobscheduler.local.metadata import Metadata, MetadataServer
from tests.test_bootstrap import INSTANCE_ID, FakeCloud, cloud, make_job

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="any", aws_secret_access_key="any")


def test_emulated_instance_runs_a_job_with_secrets(moto_endpoint, cloud: FakeCloud, tmp_path: Path):
    """A private ECR image with an SSM and a Secrets Manager secret: the values reach the job."""
    client("ssm", moto_endpoint).put_parameter(Name="/jobscheduler/db", Value="pa ss'word", Type="SecureString")
    arn = client("secretsmanager", moto_endpoint).create_secret(Name="jobscheduler/api", SecretString="k\ney")["ARN"]
    shutdowns: list[str] = []
    metadata = MetadataServer(Metadata(instance_id=INSTANCE_ID), shutdowns.append, lambda batch: None)
    metadata.start()
    instance_dir = tmp_path / "instance"
    instance_dir.mkdir()
    env = standins.instance_environment(
        standins=standins.write_standins(tmp_path / "bin"), instance_id=INSTANCE_ID, instance_dir=instance_dir,
        imds_url=metadata.url, aws_endpoint=moto_endpoint, region=REGION, real_docker_path=None)
    job = make_job(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/team/job:7",
                   secrets={"DB_PASSWORD": "/jobscheduler/db", "API_KEY": arn},
                   command=["sh", "-c", 'printf "%s|%s" "$DB_PASSWORD" "$API_KEY" >seen'])
    script = tmp_path / "user-data.sh"
    script.write_text(render_user_data(job, api_url=cloud.url, secret="s", log_group=None, region=REGION))
    try:
        proc = subprocess.run(["bash", str(script)], env=env, cwd=instance_dir, capture_output=True, text=True,
                              timeout=60)
    finally:
        metadata.stop()

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (instance_dir / "seen").read_text() == "pa ss'word|k\ney"
    assert cloud.accepted_results == [{"status": "FinishedOK", "exitCode": 0, "instanceId": INSTANCE_ID}]
    assert shutdowns[-1] == "now"
    assert "ECS agent disabled" not in proc.stdout  # an emulated instance has none


def test_a_finished_instance_leaves_only_its_id_and_is_never_booted_again(tmp_path: Path):
    """The instance emulator boots a running instance's user data once; when its life is over it keeps
    only the id (not the machine's description, servers and process), and a stale description of the
    instance as still running does not boot it a second time."""
    import time

    from moto import mock_aws
    from rich.console import Console

    from jobscheduler.local.instances import InstanceEmulator

    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        script = "#!/bin/bash\necho booted >> booted.txt\n"  # boto3 base64-encodes it
        instance_id = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                        UserData=script)["Instances"][0]["InstanceId"]
        emulator = InstanceEmulator(ec2, None, "local", tmp_path, lambda *_: {"PATH": "/usr/bin:/bin"},
                                    Console(quiet=True))
        running = {instance_id: {"InstanceId": instance_id, "State": {"Name": "running"}}}
        deadline = time.monotonic() + 30
        while emulator.machines or instance_id not in emulator.finished:
            assert time.monotonic() < deadline, "the instance's life did not end"
            emulator.step(running if instance_id not in emulator.finished else {})
            time.sleep(0.1)
        assert ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"][
            "Name"] in ("shutting-down", "terminated")
        emulator.step(running)  # a description from before the termination
        assert emulator.machines == {}
        time.sleep(1.5)  # past the boot delay
        emulator.step(running)
        emulator.stop()
        assert (tmp_path / instance_id / "booted.txt").read_text() == "booted\n"
