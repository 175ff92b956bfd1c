"""moto in server mode on 127.0.0.1, and the stack's resources created in it.

The resources mirror the CDK stack (the tests create them too): the job table
from the runtime's own definition, two launch templates that terminate on
shutdown (the CPU jobs', and the GPU jobs' on a GPU image moto knows), the
default VPC's subnets, a log group for the containers' output, and the state
machine from the one ASL file.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from botocore.exceptions import ClientError

from infra import definition
from jobscheduler.local import runtime

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account: every local resource lives in it
ACCOUNT_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/jobscheduler-local-workflow"
# Images of moto's own catalogue standing in for the stack's: any x86_64 one for CPU jobs,
# a CUDA deep learning image for GPU jobs (the launch tells the two templates apart by it).
CPU_IMAGE = "ami-12c6146b"
GPU_IMAGE = "ami-9b32e8e2"
# Variables that could send a client to a real account instead of the local endpoint.
_REAL_ACCOUNT_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_DEFAULT_PROFILE")


class PortInUse(RuntimeError):
    """A port the local stack needs is taken."""


def check_port_free(port: int, flag: str) -> None:
    """Fail with a helpful message if ``port`` cannot be bound on 127.0.0.1.

    The emulated AWS binds in a child process, which would only exit on a
    taken port, so the check comes first and names the flag to change.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise PortInUse(f"port {port} on {HOST} is in use ({exc.strerror}); choose another with {flag}") from None


def use_local_endpoint(aws_port: int) -> str:
    """Point every AWS client of this process at the local endpoint, with fake credentials."""
    endpoint = f"http://{HOST}:{aws_port}"
    for name in _REAL_ACCOUNT_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # moto's workflow interpreter calls AWS at localhost:$MOTO_PORT; it must be
        # set before the server starts serving.
        "MOTO_PORT": str(aws_port),
    })
    return endpoint


def start_moto(aws_port: int) -> Any:
    """Start moto on 127.0.0.1:``aws_port`` with state machine execution on; returns the server.

    moto's own server (werkzeug's development server, a thread per
    connection) stays: served by waitress, whose one loop thread reads and
    writes every connection and so waits for the interpreter lock behind the
    executions' threads, a burst of 200 jobs started later (p99 16 s against
    6.3 s, on a machine loaded by other work in both runs).
    """
    from moto.server import ThreadedMotoServer

    from jobscheduler.local import moto_parity

    moto_parity.apply()
    # The interpreter logs every caught error at ERROR with its whole parse tree;
    # the workflow's own Catch handles those, so they are noise here.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # werkzeug queues 128 connections; 200 executions waking together open more, and a
    # dropped SYN is retried 1, 3, 7, 15 s later: a job 16 s late for no reason of its own.
    from werkzeug.serving import BaseWSGIServer

    BaseWSGIServer.request_queue_size = 1024
    server = ThreadedMotoServer(ip_address=HOST, port=aws_port, verbose=False)
    server.start()
    response = requests.post(f"http://{HOST}:{aws_port}/moto-api/config",
                             json={"stepfunctions": {"execute_state_machine": True}}, timeout=10)
    response.raise_for_status()
    return server


class WaitressServer:
    """A WSGI application served by waitress on 127.0.0.1:``port`` in a background thread (the local API).

    A listen queue of 1,024 holds a burst of callbacks: a dropped SYN is
    retried 1, 3, 7, 15 s later.
    """

    def __init__(self, app: Any, port: int, name: str, threads: int = 64) -> None:
        import waitress

        # waitress logs a queue depth each time every thread is busy: a burst's normal state here.
        logging.getLogger("waitress").setLevel(logging.ERROR)
        self._server: Any = waitress.create_server(
            app, host=HOST, port=port, threads=threads, backlog=1024, connection_limit=4096, ident=name,
            expose_tracebacks=False)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def start(self) -> None:
        """Serve until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting requests, close every connection, release the port, end the worker threads."""
        server = self._server

        def close_all() -> None:
            # In the server's own loop: once its map is empty, the loop ends.
            for dispatcher in list(server._map.values()):
                dispatcher.close()

        if self._thread.is_alive():
            server.trigger.pull_trigger(close_all)
            self._thread.join(timeout=10)
        else:
            close_all()
        server.task_dispatcher.shutdown(timeout=5)


@dataclass
class LocalCloud:
    """The resources one local stack owns in moto."""

    table: str
    state_machine_arn: str
    launch_template_id: str
    subnet_ids: list[str]
    stack_tag: str
    log_group: str
    sweeper_rule: str
    # Recurring schedules: EventBridge Scheduler's group for this stack (see schedule_settings).
    schedule_group: str = ""
    # The launch templates' versions the workflow builds on, and the GPU jobs' template.
    launch_template_version: str = "1"
    gpu_launch_template_id: str = ""
    gpu_launch_template_version: str = "1"

    @classmethod
    def create(cls, session: boto3.session.Session, stack_tag: str = "local", table: str = "Jobs") -> LocalCloud:
        """Create table, launch template, subnets' list, log group and the state machine from the ASL file."""
        store = runtime.module("chalicelib.store")
        ddb, ec2 = session.client("dynamodb"), session.client("ec2")
        ddb.create_table(**store.table_definition(table))
        subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]][:2]
        template, version = _create_launch_template(ec2, f"{stack_tag}-jobs", CPU_IMAGE)
        gpu_template, gpu_version = _create_launch_template(ec2, f"{stack_tag}-gpu-jobs", GPU_IMAGE)
        log_group = f"/jobscheduler/{stack_tag}/jobs"
        _create_log_group(session.client("logs"), log_group)
        asl = definition.render({"JobsTable": table, "StackTag": stack_tag})
        arn = session.client("stepfunctions").create_state_machine(
            name=f"{stack_tag}-jobs", definition=asl, roleArn=ACCOUNT_ROLE)["stateMachineArn"]
        # As in the CDK stack, the sweeper's schedule starts on; idle, the sweeper turns it off.
        rule = f"{stack_tag}-sweeper"
        session.client("events").put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED")
        group = f"{stack_tag}-schedules"
        session.client("scheduler").create_schedule_group(Name=group)
        return cls(table, arn, template, subnets, stack_tag, log_group, rule, group, launch_template_version=version,
                   gpu_launch_template_id=gpu_template, gpu_launch_template_version=gpu_version)

    def runtime_environment(self, api_url: str) -> dict[str, str]:
        """The runtime's settings for these resources, with timing fast enough to watch."""
        config = runtime.config()
        return {
            config.JOBS_TABLE: self.table,
            config.STATE_MACHINE_ARN: self.state_machine_arn,
            config.LAUNCH_TEMPLATE_ID: self.launch_template_id,
            config.LAUNCH_TEMPLATE_VERSION: self.launch_template_version,
            config.GPU_LAUNCH_TEMPLATE_ID: self.gpu_launch_template_id,
            config.GPU_LAUNCH_TEMPLATE_VERSION: self.gpu_launch_template_version,
            config.SUBNET_IDS: ",".join(self.subnet_ids),
            config.STACK_TAG: self.stack_tag,
            config.SWEEPER_RULE: self.sweeper_rule,
            config.JOB_LOG_GROUP: self.log_group,
            config.API_URL: api_url,
            config.ACCOUNT_ID: ACCOUNT_ID,
            # Seconds, not minutes: a job's whole life fits in a few seconds locally.
            config.POLL_SECONDS: "1",
            config.BACKOFF_SECONDS: "2",
            config.PROVISIONING_SECONDS: "30",
            config.BOOT_SECONDS: "30",
            # The instance emulator's docker stop grace is 5 s (see standins.py).
            config.STOP_GRACE_SECONDS: "6",
            **self.schedule_settings(),
        }

    def schedule_settings(self) -> dict[str, str]:
        """Where the schedules live and what they invoke: the local stack's firing calls on_schedule itself."""
        config = runtime.config()
        return {
            config.SCHEDULE_GROUP: self.schedule_group,
            config.SCHEDULE_TARGET_ARN: f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.stack_tag}-on_schedule",
            config.SCHEDULER_ROLE_ARN: f"arn:aws:iam::{ACCOUNT_ID}:role/{self.stack_tag}-scheduler",
        }


def _create_launch_template(ec2: Any, name: str, image: str) -> tuple[str, str]:
    """A launch template that terminates on shutdown: its id and default version."""
    created = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": image, "InstanceInitiatedShutdownBehavior": "terminate"},
    )["LaunchTemplate"]
    return created["LaunchTemplateId"], str(created["DefaultVersionNumber"])


def _create_log_group(logs: Any, name: str) -> None:
    try:
        logs.create_log_group(logGroupName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
