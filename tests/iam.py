"""IAM as AWS enforces it, in moto: each principal gets exactly the policies the synthesised template gives it.

- moto checks identity policies on requests signed by IAM users or assumed
  roles once its access control is on (``enable_iam_authentication``: the
  ``INITIAL_NO_AUTH_ACTION_COUNT`` setting at 0). The functions run under a
  session of their role (as Lambda gives them), the workflow's AWS calls under
  a session of the state machine's role (``moto_parity.sign_workflow_calls``),
  and the test's own look-ups under an administrator of the emulated account.
- moto authorises most services' calls against the resource ``*``, so a
  statement naming an ARN would never match. ``RESOURCE_OF`` tells it the
  resource AWS authorises each call against (table or index, execution, log
  group or stream, rule, event bus, instance, launch template): a statement
  scoped to the wrong one fails here as it would in AWS.
- The template's ``Ref``, ``Fn::GetAtt`` and ``Fn::Join`` resolve to the
  emulated resources: the job table and its indexes, the workflow and its
  executions, the job log group, the two launch templates, the sweeper rule (the
  emulated stack takes the template's stack name, so the rule's name and the
  stack tag are the same), and the partition, region and account. What has no
  counterpart in the emulation (the functions' own log groups, the VPC's
  subnets and security group, the AMI parameter, the instance role, a
  dead-letter queue) resolves to an ARN that names nothing: such a grant
  allows nothing here, never more than in AWS. (``*`` would widen a statement
  such as LaunchFromTemplate to every resource.)
- moto evaluates no ``Condition`` (it has no request context): the tag
  condition on TerminateInstances is checked by the stack tests, not here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from chalicelib import aws as runtime_aws
from jobscheduler.local import moto_parity
from jobscheduler.local.cloud import LocalCloud

ACCOUNT, REGION = "123456789012", "us-east-1"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
          "AWS::URLSuffix": "amazonaws.com"}
ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
    "Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}


# --- the template's policies, resolved to the emulated resources -------------------------------------------


def emulated_names(template: dict[str, Any], paths: dict[str, str], cloud: LocalCloud) -> dict[tuple[str, str], str]:
    """(logical id or pseudo parameter, attribute or "Ref") -> the emulated value, for what the emulation has.

    ``paths`` gives the logical ids of the construct paths Jobs, JobWorkflow,
    JobLogs, JobInstance and GpuJobInstance (``Synth.logical_id``).
    """
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{cloud.table}"
    names = {(name, "Ref"): value for name, value in PSEUDO.items()}
    names.update({
        (paths["Jobs"], "Ref"): cloud.table, (paths["Jobs"], "Arn"): table_arn,
        (paths["JobWorkflow"], "Ref"): cloud.state_machine_arn,
        (paths["JobWorkflow"], "Name"): cloud.state_machine_arn.rsplit(":", 1)[1],
        (paths["JobLogs"], "Ref"): cloud.log_group,
        (paths["JobLogs"], "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{cloud.log_group}:*",
        (paths["JobInstance"], "Ref"): cloud.launch_template_id,
        (paths["GpuJobInstance"], "Ref"): cloud.gpu_launch_template_id,
    })
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Events::Rule" and resource["Properties"].get("Name") == cloud.sweeper_rule:
            names[(logical_id, "Ref")] = cloud.sweeper_rule
            names[(logical_id, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{cloud.sweeper_rule}"
    return names


def resolve(value: Any, names: dict[tuple[str, str], str], unresolved: set[str]) -> Any:
    """The value with every Ref, Fn::GetAtt and Fn::Join replaced (unknown names go into ``unresolved``)."""
    if isinstance(value, list):
        return [resolve(item, names, unresolved) for item in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter).join(str(resolve(part, names, unresolved)) for part in parts)
    if "Ref" in value or "Fn::GetAtt" in value:
        logical_id, attribute = (value["Ref"], "Ref") if "Ref" in value else value["Fn::GetAtt"]
        if (logical_id, attribute) in names:
            return names[(logical_id, attribute)]
        unresolved.add(f"{logical_id}.{attribute}")
        return f"arn:aws:unresolved:{REGION}:{ACCOUNT}:{logical_id}/{attribute}"
    return {key: resolve(item, names, unresolved) for key, item in value.items()}


def role_documents(template: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """Every policy document the template attaches to the role (inline, or AWS::IAM::Policy)."""
    properties = template["Resources"][role]["Properties"]
    assert not properties.get("ManagedPolicyArns"), f"{role}: managed policies cannot be emulated"
    documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"].get("Roles", []):
            documents.append(resource["Properties"]["PolicyDocument"])
    return documents


def actions_of(statement: dict[str, Any]) -> set[str]:
    """The statement's actions as a set."""
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def granted(documents: list[dict[str, Any]]) -> set[str]:
    """Every action the documents allow."""
    return {a for d in documents for s in d["Statement"] if s["Effect"] == "Allow" for a in actions_of(s)}


def without_actions(document: dict[str, Any], dropped: Collection[str]) -> dict[str, Any]:
    """The document with these actions taken out of every statement (a statement left empty goes)."""
    statements = []
    for statement in document["Statement"]:
        kept = sorted(actions_of(statement) - set(dropped))
        if kept:
            statements.append({**statement, "Action": kept})
    return {**document, "Statement": statements}


def function_role(template: dict[str, Any], function: str) -> str:
    """The logical id of the role a function of the template runs as."""
    role = template["Resources"][function]["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"{function}: role {role} is not one of the template's"
    return str(role["Fn::GetAtt"][0])


# --- what moto authorises each call against ----------------------------------------------------------------


def _body(response: Any) -> dict[str, Any]:
    params = getattr(response, "params", None)
    if params:
        return dict(params)
    try:
        return dict(json.loads(response.body or "{}"))
    except (TypeError, ValueError):
        return {}


def _dynamodb(response: Any) -> str:
    body = _body(response)
    if "TableName" not in body:
        return "*"
    arn = f"arn:aws:dynamodb:{response.region}:{response.current_account}:table/{body['TableName']}"
    return f"{arn}/index/{body['IndexName']}" if body.get("IndexName") else arn


def _states(response: Any) -> str:
    # Task tokens name no resource: SendTask* are authorised against "*".
    body = _body(response)
    return str(body.get("executionArn") or body.get("stateMachineArn") or "*")


def _logs(response: Any) -> str:
    # Log-group actions are authorised against the ARN with the trailing ":*" (CloudWatch Logs' IAM guide).
    body = _body(response)
    if "logGroupName" not in body:
        return "*"
    group = f"arn:aws:logs:{response.region}:{response.current_account}:log-group:{body['logGroupName']}"
    return f"{group}:log-stream:{body['logStreamName']}" if body.get("logStreamName") else f"{group}:*"


def _events(response: Any) -> str:
    body, prefix = _body(response), f"arn:aws:events:{response.region}:{response.current_account}"
    if response._get_action() == "PutEvents":
        bus = (body.get("Entries") or [{}])[0].get("EventBusName") or "default"
        return bus if bus.startswith("arn:") else f"{prefix}:event-bus/{bus}"
    if "Name" not in body:
        return "*"
    bus = body.get("EventBusName") or "default"
    return f"{prefix}:rule/{body['Name']}" if bus == "default" else f"{prefix}:rule/{bus}/{body['Name']}"


def _ec2(response: Any) -> str:
    # Only the calls with resource-level permissions that the stack scopes; every other EC2 call is "*".
    body, action = _body(response), response._get_action()
    prefix = f"arn:aws:ec2:{response.region}:{response.current_account}"
    if action == "TerminateInstances" and body.get("InstanceIds"):
        return f"{prefix}:instance/{body['InstanceIds'][0]}"  # moto checks one resource per call
    template = (body.get("LaunchTemplateId")
                or (body.get("LaunchTemplate") or {}).get("LaunchTemplateId")
                or ((body.get("LaunchTemplateConfigs") or [{}])[0].get("LaunchTemplateSpecification") or {}
                    ).get("LaunchTemplateId"))
    return f"{prefix}:launch-template/{template}" if template else "*"


def _scheduler(response: Any) -> str:
    # A schedule is authorised against its ARN, which names its group (the stack's role is scoped to its own).
    action = response._get_action()
    if action not in ("CreateSchedule", "UpdateSchedule", "DeleteSchedule", "GetSchedule"):
        return "*"
    group = _body(response).get("GroupName") or (response.querystring.get("groupName") or ["default"])[0]
    name = response.uri.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return f"arn:aws:scheduler:{response.region}:{response.current_account}:schedule/{group}/{name}"


def _response_classes() -> dict[type, Any]:
    from moto.dynamodb.responses import DynamoHandler
    from moto.ec2.responses import EC2Response
    from moto.events.responses import EventsHandler
    from moto.logs.responses import LogsResponse
    from moto.scheduler.responses import EventBridgeSchedulerResponse
    from moto.stepfunctions.responses import StepFunctionResponse

    return {DynamoHandler: _dynamodb, StepFunctionResponse: _states, LogsResponse: _logs, EventsHandler: _events,
            EC2Response: _ec2, EventBridgeSchedulerResponse: _scheduler}


# --- the calls made, and under which function ---------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call moto authorised (or refused): who made it, and the function running in that thread, if any."""

    principal: str  # the role's name (or the test's own user)
    function: str | None
    action: str
    resource: str
    allowed: bool


@dataclass
class Enforcement:
    """IAM on in moto; run code as one of the template's functions with ``as_function``."""

    template: dict[str, Any]
    sessions: dict[str, dict[str, str]]  # role logical id -> boto3 credential arguments
    monkeypatch: pytest.MonkeyPatch
    unresolved: set[str] = field(default_factory=set)  # the template's names the emulation lacks
    calls: list[Call] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)  # the functions run so far
    _running: threading.local = field(default_factory=threading.local)
    _current_role: str | None = None

    @contextmanager
    def as_function(self, function: str) -> Iterator[None]:
        """Run the block as the template's Lambda function ``function``: its role's session, its calls recorded."""
        self.use_role(function_role(self.template, function))
        self.ran.add(function)
        self._running.function = function
        try:
            yield
        finally:
            self._running.function = None

    def use_role(self, role: str) -> None:
        """Give the runtime's clients a session of ``role`` (as Lambda's environment does)."""
        if role != self._current_role:
            credentials = self.sessions[role]
            self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials["aws_access_key_id"])
            self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials["aws_secret_access_key"])
            self.monkeypatch.setenv("AWS_SESSION_TOKEN", credentials["aws_session_token"])
            runtime_aws.reset()
            self._current_role = role

    def record(self, principal_arn: str, action: str, resource: str, allowed: bool) -> None:
        """Note a call moto checked (the test's own look-ups as an administrator are left out)."""
        kind, _, path = principal_arn.rpartition(":")[2].partition("/")
        if kind == "assumed-role":
            principal = path.split("/")[0]
            self.calls.append(Call(principal, getattr(self._running, "function", None), action, resource, allowed))

    def actions(self) -> set[str]:
        """Every action the functions called (the workflow's calls and the test's own look-ups left out)."""
        return {c.action for c in self.calls if c.function}

    def denied(self) -> list[Call]:
        """The calls IAM refused, the functions' and the workflow's."""
        return [c for c in self.calls if not c.allowed]


def _assume(iam: Any, sts: Any, name: str, documents: list[dict[str, Any]]) -> dict[str, str]:
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    for number, document in enumerate(documents):
        iam.put_role_policy(RoleName=name, PolicyName=f"{name}-{number}", PolicyDocument=json.dumps(document))
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName=name)["Credentials"]
    return {"aws_access_key_id": credentials["AccessKeyId"], "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"]}


def _roles(template: dict[str, Any], names: dict[tuple[str, str], str], cloud: LocalCloud,
           functions: Collection[str], without: Collection[str], workflow_without: Collection[str],
           unresolved: set[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Sessions of the functions' roles (by logical id) and of the state machine's, with the template's policies."""
    iam, sts = boto3.client("iam"), boto3.client("sts")
    sessions = {}
    for role in sorted({function_role(template, f) for f in functions}):
        documents = [without_actions(resolve(d, names, unresolved), without) for d in role_documents(template, role)]
        sessions[role] = _assume(iam, sts, role, documents)
    (machine,) = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::StepFunctions::StateMachine"]
    workflow_role = template["Resources"][machine]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    # The emulated state machine runs as the role LocalCloud named: here that role gets the template's policies.
    emulated_role = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=cloud.state_machine_arn)["roleArn"].rsplit("/", 1)[1]
    documents = [without_actions(resolve(d, names, unresolved), workflow_without)
                 for d in role_documents(template, workflow_role)]
    return sessions, _assume(iam, sts, emulated_role, documents)


def _administrator() -> dict[str, str]:
    """Keys of an administrator of the emulated account, for the test's own look-ups."""
    iam = boto3.client("iam")
    iam.create_user(UserName="tester")
    iam.put_user_policy(UserName="tester", PolicyName="admin", PolicyDocument=json.dumps(ADMIN))
    key = iam.create_access_key(UserName="tester")["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@contextmanager
def _moto_told_resources_and_recording(enforcement: Enforcement) -> Iterator[None]:
    """moto authorises each call against its resource, and every authorisation is recorded."""
    from moto.iam.access_control import IAMRequest, IAMRequestBase

    check = IAMRequestBase.check_action_permitted
    create_request = IAMRequest._create_aws_request

    def signed_as_sent(request: Any) -> Any:
        # moto (5.2) re-signs a body-less GET or DELETE with its parsed query string as a form body, so every
        # signed REST call with a query (EventBridge Scheduler's GetSchedule, DeleteSchedule) fails its check.
        if not request._body and request._method in ("GET", "DELETE", "HEAD"):
            request._data = b""
        return create_request(request)

    def checked(request: Any, resource: str) -> None:
        try:
            check(request, resource)
        except Exception:
            enforcement.record(request._access_key.arn, request._action, resource, allowed=False)
            raise
        enforcement.record(request._access_key.arn, request._action, resource, allowed=True)

    classes = _response_classes()
    for cls, resource_of in classes.items():
        assert not hasattr(cls, "_determine_resource"), f"moto's {cls.__name__} names its resources now"
        cls._determine_resource = resource_of  # type: ignore[attr-defined]
    IAMRequestBase.check_action_permitted = checked  # type: ignore[method-assign]
    IAMRequest._create_aws_request = signed_as_sent  # type: ignore[method-assign]
    try:
        yield
    finally:
        IAMRequestBase.check_action_permitted = check  # type: ignore[method-assign]
        IAMRequest._create_aws_request = create_request  # type: ignore[method-assign]
        for cls in classes:
            delattr(cls, "_determine_resource")


@contextmanager
def enforced(template: dict[str, Any], names: dict[tuple[str, str], str], cloud: LocalCloud,
             monkeypatch: pytest.MonkeyPatch, functions: Collection[str],
             without: Collection[str] = (), workflow_without: Collection[str] = ()) -> Iterator[Enforcement]:
    """IAM enforced in moto for the functions' roles and the workflow's, as the template grants them.

    ``without`` and ``workflow_without``: actions taken out of the functions'
    roles and out of the role the template's state machine runs as, to prove
    that a missing grant fails.
    """
    from moto.core.authorization import enable_iam_authentication

    unresolved: set[str] = set()
    sessions, workflow = _roles(template, names, cloud, functions, without, workflow_without, unresolved)
    administrator = _administrator()
    enforcement = Enforcement(template, sessions, monkeypatch, unresolved)
    previous = boto3.DEFAULT_SESSION
    with ExitStack() as undo:  # undone in reverse: IAM off first
        undo.enter_context(_moto_told_resources_and_recording(enforcement))
        boto3.setup_default_session(**administrator, region_name=REGION)
        undo.callback(setattr, boto3, "DEFAULT_SESSION", previous)
        moto_parity.sign_workflow_calls(workflow)
        undo.callback(moto_parity.sign_workflow_calls, None)
        enforcement.use_role(sorted(sessions)[0])
        undo.callback(runtime_aws.reset)
        undo.enter_context(enable_iam_authentication())
        yield enforcement
