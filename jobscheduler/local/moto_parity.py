"""Where moto differs from AWS in a way the workflow relies on, make it agree (parity shims).

Applied by the tests and the local stack, never in AWS. Each shim names the
AWS behaviour it restores and was checked against the moto releases in
``TESTED_MOTO``; ``apply`` refuses any other release. Every shim has its
entry, under its own name, in docs/aws-vs-moto.md, with the test that holds
AWS's behaviour. ``apply`` also installs the speed shims of
``moto_speedups`` (same behaviour, less work).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from jobscheduler.local import moto_speedups

# The moto releases these shims were written and tested against: each patches
# moto's internals, which a later release may change without notice.
TESTED_MOTO = ((5, 2, 5), (5, 3, 0))  # from (inclusive), to (exclusive)

_applied = False
# What the workflow's AWS calls are signed with: moto's fixed pair, or (where a
# test enforces IAM) a session of the state machine's role, as in AWS.
_workflow_credentials: dict[str, str] = {"aws_access_key_id": "ak", "aws_secret_access_key": "sk"}


def sign_workflow_calls(credentials: dict[str, str] | None) -> None:
    """Sign the workflow's AWS calls with these boto3 credential arguments (``None``: moto's own)."""
    global _workflow_credentials
    _workflow_credentials = credentials or {"aws_access_key_id": "ak", "aws_secret_access_key": "sk"}


def apply() -> None:
    """Install the shims once per process; refuse a moto release they were not tested with."""
    global _applied
    if _applied:
        return
    check_version(metadata.version("moto"))
    _heartbeat_timeout_error()
    _stop_right_after_start()
    _callback_before_the_wait()
    _atomic_item_access()
    _launch_template_versions()
    _ec2_error_name()
    moto_speedups.apply(lambda: _workflow_credentials)
    _applied = True


def check_version(version: str) -> None:
    """Raise RuntimeError unless ``version`` lies in TESTED_MOTO (docs/aws-vs-moto.md lists what each shim fixes)."""
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    low, high = TESTED_MOTO
    if not low <= parts < high:
        raise RuntimeError(
            f"moto {version}: the shims in jobscheduler/local/ (moto_parity, moto_speedups) were tested with moto "
            f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}; install that range "
            "(pyproject.toml pins it) or re-check each shim against this release")


def _heartbeat_timeout_error() -> None:
    # AWS fails a task whose heartbeats stop with States.HeartbeatTimeout (which
    # States.Timeout also matches); moto reports every timeout as States.Timeout.
    from moto.stepfunctions.parser.api import HistoryEventType, TaskTimedOutEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTask._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, HeartbeatTimeoutError):
            name = StatesErrorNameType.StatesHeartbeatTimeout
            return FailureEvent(
                env=env, error_name=StatesErrorName(typ=name), event_type=HistoryEventType.TaskTimedOut,
                event_details=EventDetails(taskTimedOutEventDetails=TaskTimedOutEventDetails(error=name.to_name())),  # type: ignore[typeddict-item]
            )
        return original(self, env, ex)

    StateTask._from_error = from_error  # type: ignore[method-assign]


def _stop_right_after_start() -> None:
    # AWS can stop an execution the moment it started; moto's worker thread sets
    # up its environment a little later and fails a stop that comes first.
    import time

    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker.stop

    def stop(self: Any, stop_date: Any, error: str | None, cause: str | None) -> None:
        deadline = time.monotonic() + 5
        # set_stop only acts once the program runs (its state is None until then).
        while (self.env is None or self.env.program_state() is None) and time.monotonic() < deadline:
            time.sleep(0.01)
        original(self, stop_date, error, cause)

    ExecutionWorker.stop = stop  # type: ignore[method-assign]


def _callback_before_the_wait() -> None:
    # AWS completes a task whose SendTaskSuccess arrives the moment the task's
    # own call returned. moto sets up the heartbeat watch only after that call,
    # and a fresh watch forgets a result that came first, so the task then
    # waits for its timeout. A watch set up after the result starts notified.
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    original = CallbackEndpoint.setup_heartbeat_endpoint

    def setup_heartbeat_endpoint(self: Any, heartbeat_seconds: int) -> Any:
        endpoint = original(self, heartbeat_seconds)
        if self.get_outcome() is not None:
            endpoint.notify()  # type: ignore[no-untyped-call]  # moto's callback endpoint is untyped
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint  # type: ignore[method-assign]


def _atomic_item_access() -> None:
    # DynamoDB applies each conditional write atomically, and a read sees an
    # item as it was before a write or after it. moto reads, checks and writes
    # an item without a lock, so two threads (the workflow's RunJob and an
    # instance's callback) can both pass their conditions and one write is
    # lost. And a read makes its answer from the live item after the backend
    # call returned: a write from another thread in between is seen half
    # done, or fails the read ("dictionary changed size during iteration").
    # One lock: around each item write in the backend, and around each whole
    # DynamoDB request, from its parameters to its answer's JSON.
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()

    def locked(original: Any) -> Any:
        @functools.wraps(original)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return call

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        setattr(DynamoDBBackend, name, locked(getattr(DynamoDBBackend, name)))
    DynamoHandler.call_action = locked(DynamoHandler.call_action)  # type: ignore[method-assign]


def _launch_template_versions() -> None:
    # The workflow gives each capacity request its own launch template version
    # (the stack's version plus the job's user data) and deletes it afterwards.
    # AWS (API reference, CreateLaunchTemplateVersion / DeleteLaunchTemplateVersions):
    # - SourceVersion: the new version inherits the source's launch parameters;
    #   those in LaunchTemplateData replace them. moto ignores SourceVersion.
    # - ClientToken makes a retried create return the version it made. moto ignores it.
    # - Version numbers follow creation order and are never reused; a deleted
    #   version is gone. moto numbers by list position and cannot delete one
    #   (DeleteLaunchTemplateVersions is not implemented).
    # - UserData is stored as given (base64), as CreateLaunchTemplate stores it in moto.
    import copy

    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidLaunchTemplateVersionNotFound
    from moto.ec2.models.launch_templates import LaunchTemplate, LaunchTemplateVersion
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data

    def create_version(self: Any, data: dict[str, Any], description: str) -> LaunchTemplateVersion:
        number = getattr(self, "_last_version_number", 0) + 1
        self._last_version_number = number
        version = LaunchTemplateVersion(self, number, data, description)
        self.versions.append(version)
        return version

    def get_version(self: Any, num: Any) -> LaunchTemplateVersion:
        if str(num).lower() == "$latest":
            return self.versions[-1]  # type: ignore[no-any-return]
        wanted = self.default_version_number if str(num).lower() == "$default" else num
        for version in self.versions:
            if str(version.number) == str(wanted):
                return version  # type: ignore[no-any-return]
        raise InvalidLaunchTemplateVersionNotFound(template_id=self.id, version=str(num))

    def create_launch_template_version(self: Any) -> ActionResult:
        name, template_id = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
        template = (self.ec2_backend.get_launch_template(template_id) if template_id
                    else self.ec2_backend.get_launch_template_by_name(name))
        self.error_on_dryrun()
        tokens = template.__dict__.setdefault("_client_tokens", {})
        token = self._get_param("ClientToken")
        version = tokens.get(token) if token else None
        if version is None:
            data = self._get_param("LaunchTemplateData", {})
            if "UserData" in data:
                data["UserData"] = parse_user_data(self._get_param("LaunchTemplateData.UserData"))
            source = self._get_param("SourceVersion")
            if source:
                data = {**copy.deepcopy(template.get_version(source).data), **data}
            version = template.create_version(data, self._get_param("VersionDescription"))
            if token:
                tokens[token] = version
        return ActionResult({"LaunchTemplateVersion": {
            "CreateTime": version.create_time,
            "CreatedBy": f"arn:{self.partition}:iam::{self.current_account}:root",
            "DefaultVersion": template.is_default(version),
            "LaunchTemplateData": version.data,
            "LaunchTemplateId": template.id,
            "LaunchTemplateName": template.name,
            "VersionDescription": version.description,
            "VersionNumber": version.number,
        }})

    def delete_launch_template_versions(self: Any) -> ActionResult:
        name, template_id = self._get_param("LaunchTemplateName"), self._get_param("LaunchTemplateId")
        template = (self.ec2_backend.get_launch_template(template_id) if template_id
                    else self.ec2_backend.get_launch_template_by_name(name))
        self.error_on_dryrun()
        deleted, refused = [], []
        for number in self._get_param("Versions", []):
            named = {"LaunchTemplateId": template.id, "LaunchTemplateName": template.name,
                     "VersionNumber": int(number) if str(number).isdigit() else 0}
            found = [v for v in template.versions if str(v.number) == str(number)]
            if not found or found[0].number == template.default_version_number:
                why = ("launchTemplateVersionDoesNotExist", f"version {number} does not exist") if not found else (
                    "unexpectedError", "the default version cannot be deleted")
                refused.append({**named, "ResponseError": {"Code": why[0], "Message": why[1]}})
                continue
            template.versions.remove(found[0])
            deleted.append(named)
        return ActionResult({"SuccessfullyDeletedLaunchTemplateVersions": deleted,
                             "UnsuccessfullyDeletedLaunchTemplateVersions": refused})

    LaunchTemplate.create_version = create_version  # type: ignore[method-assign]
    LaunchTemplate.get_version = get_version  # type: ignore[method-assign]
    LaunchTemplate.default_version = lambda self: self.get_version("$Default")  # type: ignore[method-assign]
    LaunchTemplates.create_launch_template_version = create_launch_template_version  # type: ignore[method-assign]
    # An attribute moto 5.2.5 lacks and 5.2.6 has: either error code, whichever the installed release raises.
    LaunchTemplates.delete_launch_template_versions = delete_launch_template_versions  # type: ignore[attr-defined,method-assign,unused-ignore]


def _ec2_error_name() -> None:
    # Step Functions names every failed EC2 call of an aws-sdk task
    # "Ec2.Ec2Exception" (EC2's API models no exception types; the message goes
    # in the cause). moto derives "ec2.ec2Exception" from the service name, which
    # a Catch on "Ec2.Ec2Exception" would not match.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
    )

    state_task_service_aws_sdk._SERVICE_ERROR_NAMES["ec2"] = "Ec2"
