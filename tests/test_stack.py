"""The CDK stack, proven by synthesis: the template CloudFormation would receive.

The app is synthesised once per session (``chalice package`` runs inside it);
the tests then read resources and properties. No AWS account is needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from aws_cdk import aws_iam as iam

from chalicelib import config, store
from chalicelib.statuses import TAG_STACK
from infra import definition, packaging, permissions
from infra.app import DEFAULT_STACK_NAME, build
from infra.network import Network, NetworkSettings
from infra.stack import RUNTIME_DIR, Settings

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, REGION = "123456789012", "us-east-1"
# What `cdk deploy` sees with credentials: a known account and region, and the
# region's Availability Zones (which the CLI would look up; here, cached context).
SYNTH_ENV = {
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    "JSII_DEPRECATED": "quiet",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "CDK_DEFAULT_ACCOUNT": ACCOUNT,
    "CDK_DEFAULT_REGION": REGION,
}
AZS = [f"{REGION}{letter}" for letter in "abcdef"]
# Actions an instant fleet checks on the caller besides ec2:CreateFleet itself,
# and those CDK adds to the workflow role for its logging and X-Ray tracing.
FLEET_LAUNCH = {"ec2:RunInstances", "ec2:CreateTags", "iam:PassRole", "iam:CreateServiceLinkedRole"}
LOGGING_AND_TRACING = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
    "xray:GetSamplingRules", "xray:GetSamplingTargets",
}


@dataclass
class Synth:
    """One synthesis of the app: the stack's template and the validation report."""

    app: cdk.App
    outdir: Path
    template: dict[str, Any]
    report: dict[str, Any]
    error: str | None

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        """Resources of one CloudFormation type, by logical id."""
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == kind}

    def logical_id(self, path: str) -> str:
        """The logical id of the resource at a construct path under the stack."""
        wanted = f"{DEFAULT_STACK_NAME}/{path}"
        ids = [k for k, v in self.template["Resources"].items()
               if v.get("Metadata", {}).get("aws:cdk:path") == wanted]
        assert len(ids) == 1, f"no single resource at {wanted}: {ids}"
        return ids[0]

    def statements(self, role_path: str) -> list[dict[str, Any]]:
        """Every policy statement attached to the role at a construct path."""
        role = self.logical_id(role_path)
        found = [s for p in self.template["Resources"][role]["Properties"].get("Policies", [])
                 for s in p["PolicyDocument"]["Statement"]]
        for policy in self.resources("AWS::IAM::Policy").values():
            if {"Ref": role} in policy["Properties"].get("Roles", []):
                found += policy["Properties"]["PolicyDocument"]["Statement"]
        return found


# The other deployment choices the tests synthesise (`cdk deploy -c name=value`).
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:jobscheduler-alarms"
CHOICES = {"allowCrossAccount": "true", "alarmTopicArn": TOPIC}


# The `synth` and `synth_with_choices` fixtures (tests/conftest.py) call `synthesise` once a session each.


def synthesise(outdir: Path, context: dict[str, Any]) -> Synth:
    """Synthesise the app into ``outdir`` as `cdk synth -c ...` would, the environment restored after."""
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        for name, value in SYNTH_ENV.items():
            env.setenv(name, value)
        # Path metadata (as the CLI asks for) lets tests find resources by construct path.
        app = cdk.App(outdir=str(outdir), context={
            "aws:cdk:enable-path-metadata": True,
            f"availability-zones:account={ACCOUNT}:region={REGION}": AZS, **context})
        build(app)
        error = None
        try:
            app.synth()
        except RuntimeError as exc:  # cdk-nag findings fail synthesis; the report says which
            error = str(exc)
    template_file = outdir / f"{DEFAULT_STACK_NAME}.template.json"
    if not template_file.exists():
        pytest.fail(f"synthesis failed before writing the template: {error}")
    return Synth(app, outdir, json.loads(template_file.read_text()),
                 json.loads((outdir / "validation-report.json").read_text()), error)


def actions(statement: dict[str, Any]) -> set[str]:
    """The statement's actions as a set."""
    value = statement["Action"]
    return {value} if isinstance(value, str) else set(value)


def test_table_mirrors_the_runtime_table_definition(synth: Synth) -> None:
    """The job table has the runtime's keys and indexes, on-demand billing and PITR."""
    (table,) = synth.resources("AWS::DynamoDB::Table").values()
    props, expected = table["Properties"], store.table_definition("Jobs")
    assert props["KeySchema"] == expected["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert sorted(props["GlobalSecondaryIndexes"], key=str) == sorted(expected["GlobalSecondaryIndexes"], key=str)
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_workflow_substitutions_are_the_asl_placeholders(synth: Synth) -> None:
    """The stack fills exactly the placeholders of the one ASL file."""
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    values = machine["Properties"]["DefinitionSubstitutions"]
    assert set(values) == definition.placeholders()
    assert values["JobsTable"] == {"Ref": synth.logical_id("Jobs/Resource")}
    assert values["StackTag"] == DEFAULT_STACK_NAME


def test_workflow_definition_is_the_file_with_every_state(synth: Synth) -> None:
    """The deployed definition is the ASL file: every state, and its overall timeout."""
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    deployed = json.loads(machine["Properties"]["DefinitionString"])
    assert deployed["States"] == definition.states()
    assert deployed["TimeoutSeconds"] == json.loads(definition.text())["TimeoutSeconds"] > 0


def test_workflow_logs_everything_and_is_traced(synth: Synth) -> None:
    """Logging at level ALL to the stack's log group, and X-Ray tracing."""
    (machine,) = synth.resources("AWS::StepFunctions::StateMachine").values()
    logging = machine["Properties"]["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    group = logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
    assert group == {"Fn::GetAtt": [synth.logical_id("WorkflowLogs/Resource"), "Arn"]}
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}


def test_workflow_log_group_is_under_vendedlogs(synth: Synth) -> None:
    """The workflow logs to /aws/vendedlogs/states/..., so Step Functions does not grow the account's
    CloudWatch Logs resource policy (5,120 characters for all of it) with each stack."""
    group = synth.template["Resources"][synth.logical_id("WorkflowLogs/Resource")]["Properties"]
    assert group["LogGroupName"] == f"/aws/vendedlogs/states/{DEFAULT_STACK_NAME}-workflow"


def asl_actions() -> set[str]:
    """The IAM actions behind the AWS SDK integrations the ASL file calls."""
    found = set()
    for state in definition.states().values():
        match = re.fullmatch(r"arn:aws:states:::aws-sdk:(\w+):(\w+)(\.waitForTaskToken)?",
                             state.get("Resource", ""))
        if state["Type"] == "Task":
            assert match, f"unexpected task resource {state['Resource']}"
            found.add(f"{match[1]}:{match[2][0].upper()}{match[2][1:]}")
    return found


def test_workflow_role_may_call_only_what_the_asl_uses(synth: Synth) -> None:
    """The workflow role's actions are the ASL's, what a fleet launch checks, and logging/tracing."""
    granted = set().union(*(actions(s) for s in synth.statements("WorkflowRole/Resource")))
    assert {"ec2:CreateFleet", "ec2:TerminateInstances"} <= asl_actions()
    assert granted == asl_actions() | FLEET_LAUNCH | LOGGING_AND_TRACING


def test_workflow_role_is_scoped_to_this_table_template_and_instance_role(synth: Synth) -> None:
    """DynamoDB on this table only; launches from this template; PassRole for the instance role only."""
    by_sid = {s.get("Sid"): s for s in synth.statements("WorkflowRole/Resource")}
    table = synth.logical_id("Jobs/Resource")
    assert by_sid["JobRecords"]["Resource"] == {"Fn::GetAtt": [table, "Arn"]}
    launch = {flat(r) for r in by_sid["LaunchFromTemplate"]["Resource"]}
    templates = {f":launch-template/<{synth.logical_id(f'{name}/Resource')}>"
                 for name in ("JobInstance", "GpuJobInstance")}
    named = {*templates, f":security-group/<{synth.logical_id('Network/JobInstances/Resource')}.GroupId>",
             *(f":subnet/<{subnet}>" for subnet in synth.resources("AWS::EC2::Subnet"))}
    assert {arn for arn in launch if any(arn.endswith(n) for n in named)} and all(
        any(arn.endswith(n) for arn in launch) for n in named)
    assert {arn.split(":ec2:", 1)[1].split(":", 2)[2] for arn in launch if ":launch-template/" in arn} == {
        t.lstrip(":") for t in templates}
    images = set()
    for name in ("JobInstance", "GpuJobInstance"):
        template = synth.template["Resources"][synth.logical_id(f"{name}/Resource")]
        image_parameter = template["Properties"]["LaunchTemplateData"]["ImageId"]["Ref"]
        images.add(f"arn:<AWS::Partition>:ec2:{REGION}::image/<{image_parameter}>")
    assert {arn for arn in launch if ":image/" in arn} == images and len(images) == 2
    versions = {flat(r) for r in by_sid["JobLaunchTemplateVersions"]["Resource"]}
    assert {arn.rsplit(":", 1)[1] for arn in versions} == {t.split(":", 1)[1] for t in templates}
    wildcards = {arn.rsplit(":", 1)[1] for arn in launch if "*" in arn}
    assert wildcards == {"fleet/*", "instance/*", "volume/*", "network-interface/*", "spot-instances-request/*"}
    passing = by_sid["PassInstanceRole"]
    assert passing["Resource"] == {"Fn::GetAtt": [synth.logical_id("InstanceRole/Resource"), "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    assert by_sid["TagAtLaunchOnly"]["Condition"]["StringEquals"]["ec2:CreateAction"]
    linked = by_sid["CreateSpotServiceLinkedRole"]
    assert linked["Condition"] == {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}


def flat(value: Any) -> str:
    """An ARN from the template as one string: ``<AWS::Region>``, ``<Logical.Attr>`` for references."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return str(value["Fn::Join"][0]).join(flat(part) for part in value["Fn::Join"][1])
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return "<{}.{}>".format(*value["Fn::GetAtt"])


def all_statements(synth: Synth) -> list[dict[str, Any]]:
    """Every statement of every policy in the template."""
    found = []
    for resource in synth.template["Resources"].values():
        props = resource.get("Properties", {})
        docs = [props["PolicyDocument"]] if "PolicyDocument" in props else []
        docs += [p["PolicyDocument"] for p in props.get("Policies", [])]
        found += [s for d in docs for s in d["Statement"]]
    return found


def test_no_statement_allows_every_action(synth: Synth) -> None:
    """No policy grants ``*`` or a whole service's actions."""
    statements = all_statements(synth)
    assert len(statements) > 20
    for statement in statements:
        if statement["Effect"] == "Allow":  # a Deny of sqs:* (TLS only) takes nothing away
            assert not any(a == "*" or a.endswith(":*") for a in actions(statement)), statement


def test_terminate_only_instances_tagged_by_this_stack(synth: Synth) -> None:
    """Every TerminateInstances grant carries the stack tag condition."""
    grants = [s for s in all_statements(synth) if "ec2:TerminateInstances" in actions(s)]
    assert len(grants) == 2  # the workflow and the API's clean-up handlers
    for statement in grants:
        assert actions(statement) == {"ec2:TerminateInstances"}
        assert statement["Condition"] == {"StringEquals": {f"aws:ResourceTag/{TAG_STACK}": DEFAULT_STACK_NAME}}
        assert flat(statement["Resource"]).endswith(f":ec2:{REGION}:{ACCOUNT}:instance/*")


@pytest.mark.parametrize(("name", "image_parameter"), [
    ("JobInstance", "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"),
    ("GpuJobInstance", "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id")])
def test_launch_template_is_hardened(synth: Synth, name: str, image_parameter: str) -> None:
    """IMDSv2 with hop limit 2 and tags, terminate on shutdown, encrypted gp3, ECS-optimised AL2023
    (the GPU jobs' template: its GPU variant)."""
    assert len(synth.resources("AWS::EC2::LaunchTemplate")) == 2
    template = synth.template["Resources"][synth.logical_id(f"{name}/Resource")]
    data = template["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                                       "InstanceMetadataTags": "enabled"}
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"] | {"VolumeSize": 0} == {"Encrypted": True, "VolumeType": "gp3", "VolumeSize": 0,
                                               "DeleteOnTermination": True}
    image = synth.template["Parameters"][data["ImageId"]["Ref"]]
    assert image["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert image["Default"] == image_parameter
    assert data["TagSpecifications"] == [{"ResourceType": "volume",
                                          "Tags": [{"Key": TAG_STACK, "Value": DEFAULT_STACK_NAME}]}]
    assert "UserData" not in data  # each job's user data comes with its fleet request


def test_instance_role_writes_job_logs_pulls_images_reads_job_secrets(synth: Synth) -> None:
    """The instance role: the job log group, ECR pull, parameters and secrets under the prefixes."""
    by_sid = {s["Sid"]: s for s in synth.statements("InstanceRole/Resource")}
    assert set(by_sid) == {"WriteJobLogs", "EcrLogin", "EcrPull", "ReadJobParameters", "ReadJobSecrets"}
    assert actions(by_sid["WriteJobLogs"]) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert by_sid["WriteJobLogs"]["Resource"] == {"Fn::GetAtt": [synth.logical_id("JobLogs/Resource"), "Arn"]}
    assert flat(by_sid["ReadJobParameters"]["Resource"]).endswith(f"{ACCOUNT}:parameter/jobscheduler/*")
    assert flat(by_sid["ReadJobSecrets"]["Resource"]).endswith(f"{ACCOUNT}:secret:jobscheduler/*")
    assert flat(by_sid["EcrPull"]["Resource"]).endswith(f":ecr:{REGION}:{ACCOUNT}:repository/*")


def test_instance_role_reads_other_accounts_only_when_deployed_to(synth: Synth, synth_with_choices: Synth) -> None:
    """allowCrossAccount widens ECR pulls and secrets (still under the prefix) to any account and region,
    with KMS decryption through Secrets Manager only, and tells the runtime to accept them."""
    def variables(synth: Synth) -> set[str]:
        return {f["Properties"]["Environment"]["Variables"][config.ALLOW_CROSS_ACCOUNT]
                for f in functions(synth).values()}

    assert variables(synth) == {"false"} and variables(synth_with_choices) == {"true"}
    by_sid = {s["Sid"]: s for s in synth_with_choices.statements("InstanceRole/Resource")}
    assert set(by_sid) == {"WriteJobLogs", "EcrLogin", "ReadJobParameters", "EcrPullAnyAccount",
                           "ReadJobSecretsAnyAccount", "DecryptSharedSecrets"}
    assert flat(by_sid["EcrPullAnyAccount"]["Resource"]).endswith(":ecr:*:*:repository/*")
    assert flat(by_sid["ReadJobSecretsAnyAccount"]["Resource"]).endswith(":secretsmanager:*:*:secret:jobscheduler/*")
    assert actions(by_sid["DecryptSharedSecrets"]) == {"kms:Decrypt"}
    assert by_sid["DecryptSharedSecrets"]["Condition"] == {
        "StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}
    # The wider grants carry their own reasons for cdk-nag.
    violations = [v["ruleName"] for r in synth_with_choices.report["pluginReports"] for v in r["violations"]]
    assert synth_with_choices.error is None and not violations, synth_with_choices.error


def test_default_network_costs_nothing_when_idle(synth: Synth) -> None:
    """A public subnet in every AZ, no NAT gateway or elastic IP, a security group with no ingress."""
    assert not synth.resources("AWS::EC2::NatGateway") and not synth.resources("AWS::EC2::EIP")
    subnets = synth.resources("AWS::EC2::Subnet").values()
    assert sorted(s["Properties"]["AvailabilityZone"] for s in subnets) == AZS
    assert all(s["Properties"]["MapPublicIpOnLaunch"] for s in subnets)
    (group,) = synth.resources("AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]
    assert not synth.resources("AWS::EC2::SecurityGroupIngress")


def test_existing_subnets_from_context_replace_the_vpc() -> None:
    """Context vpcId and subnetIds: no VPC is created, the given subnets are used."""
    app = cdk.App(context={"vpcId": "vpc-0abc", "subnetIds": "subnet-1, subnet-2"})
    stack = cdk.Stack(app, "Net")
    network = Network(stack, "Network", NetworkSettings.from_context(stack))
    template = assertions.Template.from_stack(stack)
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.has_resource_properties("AWS::EC2::SecurityGroup", {"VpcId": "vpc-0abc"})
    assert list(network.subnet_ids) == ["subnet-1", "subnet-2"]
    with pytest.raises(ValueError, match="vpcId and subnetIds"):
        NetworkSettings.from_context(cdk.Stack(cdk.App(context={"subnetIds": "subnet-1"}), "Half"))


def test_context_values_override_settings() -> None:
    """Command-line context values (strings) become typed settings; absent ones keep defaults."""
    app = cdk.App(context={"rootVolumeGiB": "50", "apiGatewayLogRole": "false", "logRetentionDays": 90,
                           "allowCrossAccount": "true", "lambdaRuntime": "python3.12"})
    settings = Settings.from_context(app)
    assert (settings.root_volume_gib, settings.api_gateway_log_role, settings.log_retention_days) == (50, False, 90)
    assert (settings.allow_cross_account, settings.lambda_runtime) == (True, "python3.12")
    assert settings.parameter_prefix == "/jobscheduler/"
    defaults = Settings.from_context(cdk.App())
    assert (defaults.allow_cross_account, defaults.lambda_runtime) == (False, packaging.DEFAULT_LAMBDA_RUNTIME)


def test_a_wildcard_without_a_reason_is_refused() -> None:
    """A policy statement with a wildcard resource needs a written reason, or synthesis stops."""
    stack = cdk.Stack(cdk.App(), "Wild")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    statement = iam.PolicyStatement(sid="Unexplained", actions=["s3:GetObject"], resources=["*"])
    with pytest.raises(ValueError, match="Unexplained has a wildcard"):
        permissions.attach(stack, "Policy", role, [statement])


def functions(synth: Synth) -> dict[str, dict[str, Any]]:
    """The Lambda functions Chalice packaged, by logical id."""
    return synth.resources("AWS::Serverless::Function")


def test_api_functions_use_the_stacks_role_and_configuration(synth: Synth) -> None:
    """Every Chalice function runs as the stack's role with the runtime's settings."""
    assert not [k for k in synth.template["Resources"] if k.startswith("DefaultRole")]  # no Chalice role
    role = {"Fn::GetAtt": [synth.logical_id("ApiRole/Resource"), "Arn"]}
    for name, function in functions(synth).items():
        props = function["Properties"]
        assert props["Role"] == role, name
        variables = props["Environment"]["Variables"]
        assert variables[config.JOBS_TABLE] == {"Ref": synth.logical_id("Jobs/Resource")}
        assert variables[config.STATE_MACHINE_ARN] == {"Ref": synth.logical_id("JobWorkflow/Resource")}
        assert variables[config.LAUNCH_TEMPLATE_ID] == {"Ref": synth.logical_id("JobInstance/Resource")}
        for template, id_name, version_name in (
                ("JobInstance", config.LAUNCH_TEMPLATE_ID, config.LAUNCH_TEMPLATE_VERSION),
                ("GpuJobInstance", config.GPU_LAUNCH_TEMPLATE_ID, config.GPU_LAUNCH_TEMPLATE_VERSION)):
            assert variables[id_name] == {"Ref": synth.logical_id(f"{template}/Resource")}
            assert variables[version_name] == {
                "Fn::GetAtt": [synth.logical_id(f"{template}/Resource"), "DefaultVersionNumber"]}
        assert variables[config.STACK_TAG] == DEFAULT_STACK_NAME
        assert variables[config.JOB_LOG_GROUP] == {"Ref": synth.logical_id("JobLogs/Resource")}
        assert variables[config.SECRET_PARAMETER_PREFIX] == "/jobscheduler/"
        assert variables[config.SECRET_NAME_PREFIX] == "jobscheduler/"
        assert variables[config.ACCOUNT_ID] == {"Ref": "AWS::AccountId"}
        assert variables[config.ALLOW_CROSS_ACCOUNT] == "false"
        subnets = variables[config.SUBNET_IDS]["Fn::Join"]
        assert subnets[0] == "," and len(subnets[1]) == len(synth.resources("AWS::EC2::Subnet"))


def test_every_function_runs_on_a_supported_runtime(synth: Synth) -> None:
    """Each Lambda function has a runtime AWS still lets anyone create, whatever Python synthesised it."""
    found = {**functions(synth), **synth.resources("AWS::Lambda::Function")}
    assert set(functions(synth)) >= {"APIHandler", "OnJobChange", "OnSpotInterruption", "OnExecutionEnded", "Sweeper"}
    runtimes = {name: f["Properties"]["Runtime"] for name, f in found.items()}
    assert all(runtime in packaging.SUPPORTED_LAMBDA_RUNTIMES for runtime in runtimes.values()), runtimes
    assert set(functions(synth)) <= {n for n, r in runtimes.items() if r == packaging.DEFAULT_LAMBDA_RUNTIME}


def test_runtime_outside_the_supported_list_is_refused(tmp_path: Path) -> None:
    """A runtime not in the one list stops synthesis, and so do compiled dependencies built for another Python;
    pure-Python ones (the runtime's own fastjsonschema) run on any."""
    with pytest.raises(ValueError, match="python3.11"):
        packaging.pin_runtime(None, "python3.11", RUNTIME_DIR)  # type: ignore[arg-type]
    local = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    other = next(r for r in packaging.SUPPORTED_LAMBDA_RUNTIMES if r != local)
    for accepted in ("# comment only\n\n", "fastjsonschema>=2.21,<3  # pure Python\n"):
        (tmp_path / "requirements.txt").write_text(accepted)
        packaging.pin_runtime(cdk_app_without_functions(), other, tmp_path)
    (tmp_path / "requirements.txt").write_text("fastjsonschema>=2.21\ncryptography>=42\n")
    with pytest.raises(ValueError, match="lists cryptography>=42, which chalice builds for"):
        packaging.pin_runtime(cdk_app_without_functions(), other, tmp_path)


def cdk_app_without_functions() -> Any:
    """Stands in for the Chalice construct: a SAM template with no function to pin."""
    class Packaged:
        sam_template = cdk.Stack(cdk.App(), "Empty")
    return Packaged()


def test_api_role_grants_what_the_runtime_calls(synth: Synth) -> None:
    """The API role: the table and its indexes, this workflow, task tokens, instances, logs, events."""
    by_sid = {s["Sid"]: s for s in synth.statements("ApiRole/Resource")}
    table = synth.logical_id("Jobs/Resource")
    indexes = [i["IndexName"] for i in store.table_definition("Jobs")["GlobalSecondaryIndexes"]]
    assert by_sid["JobRecords"]["Resource"] == [{"Fn::GetAtt": [table, "Arn"]}] + [
        {"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, f"/index/{name}"]]} for name in indexes]
    assert "dynamodb:Scan" not in actions(by_sid["JobRecords"])
    assert by_sid["StartJobExecutions"]["Resource"] == {"Ref": synth.logical_id("JobWorkflow/Resource")}
    assert actions(by_sid["ManageJobExecutions"]) == {"states:DescribeExecution", "states:StopExecution"}
    assert actions(by_sid["AnswerTaskTokens"]) == {"states:SendTaskSuccess", "states:SendTaskFailure",
                                                   "states:SendTaskHeartbeat"}
    assert by_sid["ReadJobLogs"]["Resource"] == {"Fn::GetAtt": [synth.logical_id("JobLogs/Resource"), "Arn"]}
    assert flat(by_sid["PublishJobEvents"]["Resource"]).endswith(f"{ACCOUNT}:event-bus/default")
    assert flat(by_sid["ManageJobExecutions"]["Resource"]).endswith(
        f"{ACCOUNT}:execution:<{synth.logical_id('JobWorkflow/Resource')}.Name>:*")
    assert len(by_sid["FunctionLogs"]["Resource"]) == len(functions(synth))


def rule_for(synth: Synth, function: str) -> dict[str, Any]:
    """The one EventBridge rule whose target is the function."""
    rules = [r["Properties"] for r in synth.resources("AWS::Events::Rule").values()
             if {"Fn::GetAtt": [function, "Arn"]} in [t["Arn"] for t in r["Properties"]["Targets"]]]
    assert len(rules) == 1, f"{function}: {len(rules)} rules"
    return rules[0]


def test_every_event_handler_is_triggered_by_a_rule(synth: Synth) -> None:
    """Each plain Lambda function of the runtime has one rule and may be invoked by EventBridge."""
    # The table's stream drives OnJobChange; EventBridge Scheduler invokes OnSchedule (tests/test_stack_schedules.py).
    handlers = set(functions(synth)) - {"APIHandler", "OnJobChange", "OnSchedule"}
    assert {"OnExecutionEnded", "OnSpotInterruption", "Sweeper"} <= handlers
    permissions = [p["Properties"] for p in synth.resources("AWS::Lambda::Permission").values()
                   if p["Properties"]["Principal"] == "events.amazonaws.com"]
    for handler in handlers:
        rule_for(synth, handler)
        assert {"Fn::GetAtt": [handler, "Arn"]} in [p["FunctionName"] for p in permissions], handler


def test_event_rules_match_the_right_events(synth: Synth) -> None:
    """This state machine's failed executions, Spot warnings, and a five-minute sweep."""
    ended = rule_for(synth, "OnExecutionEnded")["EventPattern"]
    assert ended["source"] == ["aws.states"]
    assert ended["detail-type"] == ["Step Functions Execution Status Change"]
    assert ended["detail"] == {"stateMachineArn": [{"Ref": synth.logical_id("JobWorkflow/Resource")}],
                               "status": ["FAILED", "TIMED_OUT", "ABORTED"]}
    spot = rule_for(synth, "OnSpotInterruption")["EventPattern"]
    assert spot == {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
    assert rule_for(synth, "Sweeper")["ScheduleExpression"] == "rate(5 minutes)"


EVENT_HANDLERS = ("OnExecutionEnded", "OnSpotInterruption", "Sweeper")


def test_event_rules_retry_and_keep_undeliverable_events(synth: Synth) -> None:
    """Each rule retries delivery for a while, then puts the event in the dead-letter queue."""
    queue = {"Fn::GetAtt": [synth.logical_id("FailedEvents/Resource"), "Arn"]}
    for handler in EVENT_HANDLERS:
        (target,) = rule_for(synth, handler)["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": queue}, handler
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 24 * 3600


def test_failed_handler_invocations_reach_the_dead_letter_queue(synth: Synth) -> None:
    """EventBridge invokes asynchronously: a handler that raises is retried by Lambda, then its event goes to
    the same queue, sent as the function's role, which may do so before the configuration exists."""
    queue = {"Fn::GetAtt": [synth.logical_id("FailedEvents/Resource"), "Arn"]}
    configs = {c["Properties"]["FunctionName"]["Ref"]: c
               for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()}
    # OnSchedule's failures go to the schedules' own queue (tests/test_stack_schedules.py).
    assert set(configs) == {*EVENT_HANDLERS, "OnSchedule"}
    for invoke_config in (configs[handler] for handler in EVENT_HANDLERS):
        props = invoke_config["Properties"]
        assert props["Qualifier"] == "$LATEST" and props["DestinationConfig"] == {"OnFailure": {"Destination": queue}}
        assert 0 < props["MaximumRetryAttempts"] <= 2
        assert synth.logical_id("ApiPolicy/Resource") in invoke_config["DependsOn"]
    by_sid = {s["Sid"]: s for s in synth.statements("ApiRole/Resource")}
    assert actions(by_sid["FailedEventsToDeadLetters"]) == {"sqs:SendMessage"}
    assert by_sid["FailedEventsToDeadLetters"]["Resource"] == queue


def test_dead_letter_queue_is_encrypted_and_open_only_to_the_rules(synth: Synth) -> None:
    """Encrypted at rest, TLS only, and EventBridge may send to it only for this stack's handler rules."""
    queue_id = synth.logical_id("FailedEvents/Resource")
    queue = synth.template["Resources"][queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    (policy,) = [p["Properties"] for p in synth.resources("AWS::SQS::QueuePolicy").values()
                 if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
    statements = policy["PolicyDocument"]["Statement"]
    assert {"Action": "sqs:*", "Effect": "Deny", "Principal": {"AWS": "*"},
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}.items() <= next(
        s for s in statements if s["Effect"] == "Deny").items()
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    assert all(s["Principal"] == {"Service": "events.amazonaws.com"} and s["Action"] == "sqs:SendMessage"
               for s in allowed)
    rules = {k for k, r in synth.resources("AWS::Events::Rule").items()
             if r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0] in EVENT_HANDLERS}
    assert sorted(s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in allowed) == sorted(rules)


def test_sweeper_may_turn_only_its_own_rule_on_and_off(synth: Synth) -> None:
    """The functions know the sweeper rule by name, and may enable and disable that rule alone."""
    sweeper = rule_for(synth, "Sweeper")
    by_sid = {s["Sid"]: s for s in synth.statements("ApiRole/Resource")}
    assert actions(by_sid["SweeperSchedule"]) == {"events:EnableRule", "events:DisableRule"}
    assert flat(by_sid["SweeperSchedule"]["Resource"]).endswith(f":{ACCOUNT}:rule/{sweeper['Name']}")
    functions = synth.resources("AWS::Serverless::Function").values()
    assert {f["Properties"]["Environment"]["Variables"]["SWEEPER_RULE"] for f in functions} == {sweeper["Name"]}


def test_job_table_stream_drives_on_job_change(synth: Synth) -> None:
    """The table streams new and old images; a mapping hands them to OnJobChange once its role may read them."""
    (table,) = synth.resources("AWS::DynamoDB::Table").values()
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    (mapping,) = [m for m in synth.resources("AWS::Lambda::EventSourceMapping").values()]
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Fn::GetAtt": ["OnJobChange", "Arn"]}
    assert props["EventSourceArn"] == {"Fn::GetAtt": [synth.logical_id("Jobs/Resource"), "StreamArn"]}
    assert props["StartingPosition"] == "LATEST" and props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] > 0
    assert synth.logical_id("ApiPolicy/Resource") in mapping["DependsOn"]
    assert not [r for r in synth.resources("AWS::Events::Rule").values()
                if {"Fn::GetAtt": ["OnJobChange", "Arn"]} in [t["Arn"] for t in r["Properties"]["Targets"]]]


def test_api_role_reads_the_stream_spot_prices_and_execution_histories(synth: Synth) -> None:
    """on_job_change reads this table's stream and Spot prices; the timeline reads this workflow's histories."""
    by_sid = {s["Sid"]: s for s in synth.statements("ApiRole/Resource")}
    table = synth.logical_id("Jobs/Resource")
    assert actions(by_sid["ReadJobTableStream"]) == {"dynamodb:DescribeStream", "dynamodb:GetRecords",
                                                     "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
    assert flat(by_sid["ReadJobTableStream"]["Resource"]) == f"<{table}.Arn>/stream/*"
    assert actions(by_sid["SpotPriceHistory"]) == {"ec2:DescribeSpotPriceHistory"}
    assert actions(by_sid["ReadJobHistory"]) == {"states:GetExecutionHistory"}
    assert flat(by_sid["ReadJobHistory"]["Resource"]).endswith(
        f"{ACCOUNT}:execution:<{synth.logical_id('JobWorkflow/Resource')}.Name>:*")
    assert actions(by_sid["PublishJobEvents"]) == {"events:PutEvents"}
    assert actions(by_sid["ReadJobLogs"]) >= {"logs:GetLogEvents", "logs:DescribeLogStreams"}


def test_alarm_on_failed_executions(synth: Synth) -> None:
    """A CloudWatch alarm fires on any failed execution of this state machine."""
    props = synth.template["Resources"][synth.logical_id("FailedExecutions/Resource")]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert props["Dimensions"] == [{"Name": "StateMachineArn",
                                    "Value": {"Ref": synth.logical_id("JobWorkflow/Resource")}}]
    assert props["Threshold"] == 1 and props["TreatMissingData"] == "notBreaching"


def test_alarm_on_events_in_the_dead_letter_queue(synth: Synth) -> None:
    """A CloudWatch alarm fires as soon as one event waits in the dead-letter queue."""
    props = synth.template["Resources"][synth.logical_id("FailedEventsWaiting/Resource")]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {
        "Fn::GetAtt": [synth.logical_id("FailedEvents/Resource"), "QueueName"]}}]
    assert props["Threshold"] == 1 and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["TreatMissingData"] == "notBreaching"
    assert synth.template["Outputs"]["FailedEventsQueueUrl"]["Value"] == {
        "Ref": synth.logical_id("FailedEvents/Resource")}


def test_alarms_notify_the_topic_when_given(synth: Synth, synth_with_choices: Synth) -> None:
    """With alarmTopicArn every alarm notifies the topic; without, none has an action."""
    assert all("AlarmActions" not in a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values())
    alarms = synth_with_choices.resources("AWS::CloudWatch::Alarm").values()
    assert len(alarms) == 3 and all(a["Properties"]["AlarmActions"] == [TOPIC] for a in alarms)


def test_outputs_name_the_api_table_workflow_and_console(synth: Synth) -> None:
    """The outputs a user needs after `cdk deploy`."""
    outputs = synth.template["Outputs"]
    assert {"ApiUrl", "TableName", "StateMachineArn", "ExecutionsConsoleUrl"} <= set(outputs)
    assert "/api/" in json.dumps(outputs["ApiUrl"]["Value"])
    assert "console.aws.amazon.com/states" in json.dumps(outputs["ExecutionsConsoleUrl"]["Value"])


def rest_api(synth: Synth) -> dict[str, Any]:
    """The Chalice API's SAM resource (cdk-nag does not check SAM resources)."""
    return dict(synth.template["Resources"]["RestAPI"])


def test_api_stage_has_access_logs_and_throttling(synth: Synth) -> None:
    """Access logs to a log group, throttling on every method, the account's log role first."""
    api = rest_api(synth)
    props = api["Properties"]
    assert props["StageName"] == "api"
    assert props["AccessLogSetting"]["DestinationArn"] == {
        "Fn::GetAtt": [synth.logical_id("ApiAccessLogs/Resource"), "Arn"]}
    assert "$context.requestId" in props["AccessLogSetting"]["Format"]
    (method,) = props["MethodSettings"]
    assert (method["ResourcePath"], method["HttpMethod"]) == ("/*", "*")
    assert method["ThrottlingRateLimit"] > 0 and method["ThrottlingBurstLimit"] > 0
    assert api["DependsOn"] == ["ApiGatewayAccount"]


def route_auth(synth: Synth) -> dict[str, str | None]:
    """Each route's authorization type in the API definition (None: open)."""
    swagger = rest_api(synth)["Properties"]["DefinitionBody"]
    schemes = swagger.get("securityDefinitions", {})
    found = {}
    for path, methods in swagger["paths"].items():
        for method, spec in methods.items():
            names = [name for entry in spec.get("security", []) for name in entry]
            types = {schemes[n].get("x-amazon-apigateway-authtype") for n in names}
            found[f"{method.upper()} {path}"] = types.pop() if len(types) == 1 else None
    return found


def instance_route(route: str) -> bool:
    """Routes the job's instance calls with its per-job secret."""
    return route.endswith("/callback") or route.endswith("/heartbeat")


def test_instance_routes_need_no_iam_credentials(synth: Synth) -> None:
    """The instance's callback and heartbeat routes use the per-job secret, not IAM."""
    routes = route_auth(synth)
    assert [r for r in routes if instance_route(r)]
    assert all(auth is None for route, auth in routes.items() if instance_route(route))


def test_iam_denials_answer_in_the_api_error_shape(synth: Synth) -> None:
    """A missing or bad signature gets a JSON body with Code and a Message naming Authorization."""
    answers = rest_api(synth)["Properties"]["GatewayResponses"]
    assert {"UNAUTHORIZED", "MISSING_AUTHENTICATION_TOKEN", "INVALID_SIGNATURE", "ACCESS_DENIED"} <= set(answers)
    for props in answers.values():
        body = json.loads(props["ResponseTemplates"]["application/json"])
        assert body["Code"] in ("UnauthorizedError", "ForbiddenError")
        assert body["Message"].startswith("Authorization:") and props["StatusCode"] in ("401", "403")


def test_auth_answers_are_part_of_every_api_deployment(synth: Synth) -> None:
    """The 401/403 answers live in the SAM API's GatewayResponses, which SAM writes into the definition body
    every deployment is made from (x-amazon-apigateway-gateway-responses), not in separate resources that no
    deployment depends on and that the body's overwrite on update would drop."""
    assert not synth.resources("AWS::ApiGateway::GatewayResponse")
    assert not synth.resources("AWS::ApiGateway::Deployment")  # SAM makes the one deployment, from the body
    responses = rest_api(synth)["Properties"]["GatewayResponses"]
    assert len(responses) >= 4
    assert all(set(r) == {"StatusCode", "ResponseTemplates"} for r in responses.values())


def test_management_routes_use_iam_auth(synth: Synth) -> None:
    """Every route a person calls is signed with SigV4 (IAM auth)."""
    routes = route_auth(synth)
    assert all(auth == "awsSigv4" for route, auth in routes.items() if not instance_route(route)), routes


def test_cdk_nag_runs_and_reports_nothing_unacknowledged(synth: Synth) -> None:
    """AwsSolutions checks the app; no error or warning is left without an acknowledgment."""
    # Python has no getter for Validations.of(app) plugins; this (deprecated) one lists them.
    plugins = [p.name for p in synth.app.policy_validation_beta1]
    assert "AwsSolutions" in plugins
    violations = [f"{v['ruleName']} at {[c['constructPath'] for c in v['violatingConstructs']]}"
                  for r in synth.report["pluginReports"] for v in r["violations"]]
    assert synth.error is None and not violations, "\n".join(violations) or synth.error
    warnings = [f"{path}: {entry['data']}" for path, entries in stack_metadata(synth).items()
                for entry in entries if entry["type"] in ("aws:cdk:warning", "aws:cdk:error")]
    assert not warnings, "\n".join(warnings)


def stack_metadata(synth: Synth) -> dict[str, list[dict[str, Any]]]:
    """The construct metadata of the stack in the cloud assembly, by construct path."""
    return dict(json.loads((synth.outdir / f"{DEFAULT_STACK_NAME}.metadata.json").read_text()))


def test_every_acknowledgment_gives_its_reason(synth: Synth) -> None:
    """Each acknowledged finding carries a reason a reviewer can judge."""
    metadata = stack_metadata(synth)
    acknowledged = {rule: reason for entries in metadata.values() for entry in entries
                    if entry["type"] == "aws:cdk:acknowledged-rules" for rule, reason in entry["data"].items()}
    ours = {rule: reason for rule, reason in acknowledged.items() if "AwsSolutions-" in rule}
    assert len(ours) >= 10
    for rule, reason in ours.items():
        assert len(reason.split()) >= 6, f"{rule}: {reason!r}"


# cfn-lint findings the template may keep, each with the reason.
CFN_LINT_ACCEPTED = {
    "W3005": "CDK's StateMachine adds a DependsOn on its role, which its RoleArn already references",
}


def cfn_lint_failures(template: Path) -> list[str]:
    """cfn-lint's errors and warnings on the template, less the accepted ones (informational notes pass)."""
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or "cfn-lint"
    result = subprocess.run([cfn_lint, "--format", "json", str(template)], capture_output=True, text=True, timeout=120)
    findings = json.loads(result.stdout or "[]")
    return [f"{f['Rule']['Id']} {f['Location']['Path']}: {f['Message']}" for f in findings
            if f["Level"] in ("Error", "Warning") and f["Rule"]["Id"] not in CFN_LINT_ACCEPTED]


def test_template_passes_cfn_lint(synth: Synth) -> None:
    """cfn-lint finds no error and no warning in the template (deprecated Lambda runtimes among them)."""
    failures = cfn_lint_failures(synth.outdir / f"{DEFAULT_STACK_NAME}.template.json")
    assert not failures, "\n".join(failures)


def test_cfn_lint_check_fails_on_warnings_like_w3660(tmp_path: Path) -> None:
    """The check above counts warnings: a REST API body and a separate gateway response fail it (W3660)."""
    template = {"Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "a", "Body": {
            "swagger": "2.0", "info": {"title": "a", "version": "1"}, "paths": {}}}},
        "Answer": {"Type": "AWS::ApiGateway::GatewayResponse", "Properties": {
            "RestApiId": {"Ref": "Api"}, "ResponseType": "UNAUTHORIZED", "StatusCode": "401"}}}}
    (tmp_path / "mixed.json").write_text(json.dumps(template))
    assert [f for f in cfn_lint_failures(tmp_path / "mixed.json") if f.startswith("W3660 ")]


@pytest.mark.slow
def test_cdk_cli_synthesises_the_app(tmp_path: Path) -> None:
    """`npx cdk synth` with the pinned CLI runs cdk.json's app, cdk-nag included, with no credentials."""
    cli = ROOT / "node_modules" / ".bin" / "cdk"
    if not cli.exists():
        pytest.fail("node_modules/.bin/cdk is missing: run `npm ci` in the project root (the AWS CDK CLI "
                    "is pinned in package.json)")
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    installed = json.loads((ROOT / "node_modules" / "aws-cdk" / "package.json").read_text())["version"]
    assert installed == pinned, f"node_modules has aws-cdk {installed}, package.json pins {pinned}: run `npm ci`"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", "CDK_DISABLE_VERSION_CHECK": "1",
            "CDK_DISABLE_CLI_TELEMETRY": "true"}
    result = subprocess.run(["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices",
                             "--output", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    template = json.loads((tmp_path / f"{DEFAULT_STACK_NAME}.template.json").read_text())
    assert "AWS::StepFunctions::StateMachine" in {r["Type"] for r in template["Resources"].values()}


def test_lambda_package_carries_the_runtime_requirements(synth: Synth) -> None:
    """The functions' code asset holds the app and every package runtime/requirements.txt lists (boto3 aside, which
    Lambda provides): a missing one would fail every cold start in AWS, never here."""
    import zipfile

    (package,) = [p for p in synth.outdir.glob("asset.*.zip")]
    names = set(zipfile.ZipFile(package).namelist())
    assert {"app.py", "chalicelib/schema.py", "chalicelib/openapi.json", "chalicelib/bootstrap.sh"} <= names
    for requirement in packaging.requirements(RUNTIME_DIR):
        module = packaging.distribution_name(requirement).replace("-", "_")
        assert f"{module}/__init__.py" in names, f"{requirement} is not in the Lambda package"


def test_only_the_instance_role_may_be_reached_by_session_manager(synth: Synth) -> None:
    """AmazonSSMManagedInstanceCore (for a shell on a failed run held for debugging) is on the instance role
    and on no other role; the instances' security group opens no inbound port for it."""
    ssm = "AmazonSSMManagedInstanceCore"
    holders = [logical for logical, role in synth.resources("AWS::IAM::Role").items()
               if ssm in json.dumps(role["Properties"].get("ManagedPolicyArns", []))]
    assert holders == [synth.logical_id("InstanceRole/Resource")]
    for group in synth.resources("AWS::EC2::SecurityGroup").values():
        assert not group["Properties"].get("SecurityGroupIngress")
    assert not synth.resources("AWS::EC2::SecurityGroupIngress")


def test_no_role_reads_the_image_parameters(synth: Synth) -> None:
    """CloudFormation resolves both image parameters (public SSM parameters) at deploy time, as the deployer:
    no role of the stack may read them, and the only SSM grant, on the instance role, is the job's own
    parameters; Session Manager's managed policy is on the instance role alone (see above)."""
    parameters = {p["Default"] for p in synth.template["Parameters"].values()
                  if p["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"}
    assert parameters == {"/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id",
                          "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"}
    ssm_grants = [s for s in all_statements(synth) if any(a.startswith("ssm:") for a in actions(s))]
    assert [s["Sid"] for s in ssm_grants] == ["ReadJobParameters"]
    assert "/aws/service" not in json.dumps(ssm_grants)
    (holder,) = [logical for logical, resource in synth.template["Resources"].items()
                 if resource["Type"] == "AWS::IAM::Policy"
                 and "ReadJobParameters" in json.dumps(resource["Properties"]["PolicyDocument"])]
    roles = synth.template["Resources"][holder]["Properties"]["Roles"]
    assert roles == [{"Ref": synth.logical_id("InstanceRole/Resource")}]
