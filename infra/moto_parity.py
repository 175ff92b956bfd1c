"""Where moto's workflow interpreter differs from AWS in a way our workflow relies on, make it agree.

Applied by the tests and the local stack, never in AWS. Each shim names the
AWS behaviour it restores: what the workflow does, and what it costs to start
and run an execution (the speed shims), which the local stack's start
precision and throughput depend on. Every shim has its entry, under its own
name, in docs/aws-vs-moto.md, with the test that holds AWS's behaviour.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

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
    _atomic_item_writes()
    _launch_template_versions()
    _ec2_error_name()
    _definition_parsed_once()
    _service_clients_reused()
    _requests_routed_once_per_host()
    _paths_compiled_once()
    _requests_parsed_once()
    _applied = True


def check_version(version: str) -> None:
    """Raise RuntimeError unless ``version`` lies in TESTED_MOTO (docs/aws-vs-moto.md lists what each shim fixes)."""
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    low, high = TESTED_MOTO
    if not low <= parts < high:
        raise RuntimeError(
            f"moto {version}: the shims in infra/moto_parity.py were tested with moto "
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
            endpoint.notify()
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint  # type: ignore[method-assign]


def _atomic_item_writes() -> None:
    # DynamoDB applies each conditional write atomically. moto reads, checks and
    # writes an item without a lock, so two threads (the workflow's RunJob and an
    # instance's callback) can both pass their conditions and one write is lost.
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item"):
        original = getattr(DynamoDBBackend, name)

        @functools.wraps(original)
        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)


def _definition_parsed_once() -> None:
    # AWS validates a definition when the state machine is created and starts an
    # execution in milliseconds. moto parses the definition again, in pure Python,
    # for every execution: 0.1-0.4 s of CPU for our 49 states, all of it before
    # the first state. The parsed program keeps no execution's data (that lives
    # in the execution's environment, keyed by each component's heap key), so one
    # parse serves every execution of the same definition. Map and Parallel states
    # keep worker state on their components, so such definitions are not shared.
    import json
    import threading

    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    parse = ExecutionWorker._get_evaluation_entrypoint
    programs: dict[str, EvalComponent] = {}
    lock = threading.Lock()

    def entrypoint(self: Any) -> EvalComponent:
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            program = programs.get(definition)
            if program is None:
                program = parse(self)
                if _shareable(json.loads(definition)):
                    _assign_heap_keys(program)
                    programs[definition] = program
            return program

    ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign]


def _shareable(definition: Any) -> bool:
    if isinstance(definition, dict):
        if definition.get("Type") in ("Map", "Parallel"):
            return False
        return all(_shareable(value) for value in definition.values())
    if isinstance(definition, list):
        return all(_shareable(value) for value in definition)
    return True


def _assign_heap_keys(root: Any) -> None:
    # A component draws its heap key the first time it is asked; two executions
    # asking at once could each draw one. Draw them all now, under the lock.
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    pending = [root]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, EvalComponent):
            _ = value.heap_key
            pending.extend(vars(value).values())
        elif isinstance(value, list | tuple | set):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())


def _service_clients_reused() -> None:
    # A workflow task's AWS call costs AWS no client set-up; moto builds a new
    # boto3 client for every call (3 ms for DynamoDB, 16 ms for EC2 here) and
    # ignores the state's credentials. botocore clients are thread-safe, so one
    # per region, service and credentials serves every call, with a connection pool as large
    # as a burst of executions (a pool of 10 would open and drop a connection
    # per call beyond the tenth).
    import importlib
    import sys
    import threading

    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    build = boto_client.boto_client_for
    clients: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # As moto's own, but shared: its endpoint depends on whether moto intercepts calls or serves them.
        credentials = _workflow_credentials
        key = (region, service, botocore_stubber.enabled, moto_server_port(), *sorted(credentials.items()))
        with lock:
            if key not in clients:
                endpoint = {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{key[3]}"}
                clients[key] = boto3.client(
                    service, region_name=region, **credentials,
                    config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                                  connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                                  read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                                  max_pool_connections=256),
                    **endpoint)
            return clients[key]

    # Each task module imported the function by name: replace it there too.
    service = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service"
    for name in ("state_task_service_aws_sdk", "state_task_service_dynamodb"):
        importlib.import_module(f"{service}.{name}")
    for module in list(sys.modules.values()):
        if getattr(module, "boto_client_for", None) is build:
            module.boto_client_for = client_for  # type: ignore[attr-defined]


def _requests_routed_once_per_host() -> None:
    # Every request to the emulator's endpoint is routed to a service by its host:
    # moto lists its own package directory (hundreds of stat calls) and tries
    # hundreds of URL patterns for each request, under one lock. The answer for a
    # host never changes, so it is worked out once.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    route = DomainDispatcherApplication.get_backend_for_host
    routes: dict[str | None, Any] = {}

    def backend_for_host(self: Any, host: str | None) -> Any:
        if host not in routes:
            routes[host] = route(self, host)
        return routes[host]

    DomainDispatcherApplication.get_backend_for_host = backend_for_host  # type: ignore[method-assign]


def _paths_compiled_once() -> None:
    # moto compiles every JSONPath again each time a state reads or writes one,
    # and each time EventBridge delivers an event to a target (jsonpath-ng builds
    # its parser tables per call): most of an execution's CPU in the local stack.
    # A compiled path is immutable, so each is compiled once.
    import functools

    import jsonpath_ng
    import jsonpath_ng.ext
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (jsonpath_ng, jsonpath_ng.ext, json_path, result_path):
        module.parse = functools.lru_cache(maxsize=4096)(module.parse)  # type: ignore[attr-defined]


def _requests_parsed_once() -> None:
    # Per request, moto lists the handler class's methods with inspect, and parses
    # an UpdateExpression twice (once to check its placeholders, once to apply
    # it): a third of the emulator's CPU when jobs run back to back. Neither
    # answer changes for the same class or text, and the parsed expression is
    # only read (validation works on a deep copy), so each is computed once.
    import functools

    from moto.core import responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    responses.method_names_from_class = functools.lru_cache(maxsize=None)(responses.method_names_from_class)
    parse = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make.__func__)  # type: ignore[attr-defined]
    UpdateExpressionParser.make = classmethod(lambda cls, text: parse(cls, text))  # type: ignore[method-assign, assignment, arg-type]


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
    LaunchTemplates.delete_launch_template_versions = delete_launch_template_versions  # type: ignore[attr-defined]


def _ec2_error_name() -> None:
    # Step Functions names every failed EC2 call of an aws-sdk task
    # "Ec2.Ec2Exception" (EC2's API models no exception types; the message goes
    # in the cause). moto derives "ec2.ec2Exception" from the service name, which
    # a Catch on "Ec2.Ec2Exception" would not match.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
    )

    state_task_service_aws_sdk._SERVICE_ERROR_NAMES["ec2"] = "Ec2"
