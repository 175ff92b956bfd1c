"""Least-privilege IAM statements for the three principals of the stack.

- the **workflow** (Step Functions role): exactly the AWS SDK integrations the
  ASL file calls, on this table, this launch template and instances tagged by
  this stack;
- the **API** (the Chalice functions' role): the job table, this state
  machine's executions and their histories, task tokens, the job log group,
  instance clean-up, the table's stream, Spot prices, publishing job events;
- the **instance** (job instances' role): write the job log group, pull from
  ECR, read the job's secrets under configured prefixes.

Each wildcard left in a resource is one that IAM cannot narrow (actions
without resource-level permissions, resources created at run time). Its reason
is written in ``WILDCARD_REASONS`` beside the statement, keyed by the
statement's Sid; the stack acknowledges the cdk-nag finding with that reason,
and a wildcard statement without a reason fails synthesis.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import Validations
from aws_cdk import aws_iam as iam

from chalicelib.statuses import TAG_STACK

# The service-linked role EC2 needs before it can launch the first Spot
# instance in an account; creating it is allowed and nothing else.
SPOT_SERVICE = "spot.amazonaws.com"
SPOT_SERVICE_LINKED_ROLE = "aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"

WILDCARD_REASONS = {
    "LaunchFromTemplate": "An instant fleet creates the fleet, instance, volumes, network interface and "
                          "Spot request at launch, so their ids cannot be known; the launch template, "
                          "subnets, security group and image are named exactly.",
    "TagAtLaunchOnly": "Tags go only on resources being created by CreateFleet or RunInstances "
                       "(ec2:CreateAction condition), whose ids cannot be known in advance.",
    "WatchInstances": "ec2:DescribeInstanceStatus has no resource-level permissions.",
    "TerminateOwnInstances": "Instance ids are known only at run time; the aws:ResourceTag condition "
                             "limits termination to instances tagged by this stack.",
    "ManageJobExecutions": "One execution per job, named by the job id at run time; the ARN is limited "
                           "to this state machine's executions.",
    "AnswerTaskTokens": "Task tokens of service-integration tasks are not resources IAM can name; the "
                        "token itself is the capability.",
    "FindInstances": "ec2:DescribeInstances and ec2:DescribeLaunchTemplateVersions have no resource-level "
                     "permissions.",
    "ReadJobTableStream": "The stream's ARN ends in a label that changes whenever the stream is re-created; "
                          "the ARN is limited to this table's streams.",
    "SpotPriceHistory": "ec2:DescribeSpotPriceHistory has no resource-level permissions.",
    "ChooseInstanceTypes": "ec2:DescribeInstanceTypes has no resource-level permissions.",
    "ReadJobHistory": "One execution per job, named by the job id at run time; the ARN is limited to this "
                      "state machine's executions.",
    "EcrLogin": "ecr:GetAuthorizationToken has no resource-level permissions.",
    "EcrPull": "A job may name any image of this account's repositories in this region.",
    "ReadJobParameters": "Each job names its own secret parameters; only those under the configured "
                         "prefix can be read.",
    "ReadJobSecrets": "Each job names its own secrets; only those under the configured name prefix "
                      "can be read.",
    # Only with the allowCrossAccount context value:
    "EcrPullAnyAccount": "The stack was deployed to allow images of other accounts and regions; each "
                         "repository's own policy must still grant this role.",
    "ReadJobSecretsAnyAccount": "The stack was deployed to allow secrets of other accounts and regions "
                                "under the configured name prefix; each secret's resource policy must "
                                "still grant this role.",
    "ManageSchedules": "One EventBridge Scheduler schedule per recurring schedule, named by its id at run "
                       "time; the ARN is limited to the stack's own schedule group.",
    "DecryptSharedSecrets": "A secret shared from another account is encrypted with that account's own KMS key, "
                            "whose id is not known here; only decryption through Secrets Manager is allowed.",
}


@dataclass(frozen=True)
class LaunchResources:
    """ARNs of what an instance launch touches."""

    launch_template: str
    subnets: Sequence[str]
    security_group: str
    image: str
    instance_role: str
    # The GPU jobs' launch template and image (the GPU variant of the stack's image).
    gpu_launch_template: str = ""
    gpu_image: str = ""

    def launch_templates(self) -> list[str]:
        """Every launch template a job's instances launch from."""
        return [t for t in (self.launch_template, self.gpu_launch_template) if t]

    def images(self) -> list[str]:
        """Every image a job's instances boot."""
        return [i for i in (self.image, self.gpu_image) if i]


def attach(stack: cdk.Stack, construct_id: str, role: iam.IRole,
           statements: list[iam.PolicyStatement]) -> iam.Policy:
    """Attach the statements to the role; acknowledge each wildcard with its statement's reason."""
    policy = iam.Policy(stack, construct_id, roles=[role], statements=statements)
    for statement in statements:
        for arn in statement.resources:
            resolved = stack.resolve(arn)
            if "*" not in json.dumps(resolved):
                continue
            reason = WILDCARD_REASONS.get(statement.sid or "")
            if not reason:
                raise ValueError(f"{construct_id}: statement {statement.sid} has a wildcard resource "
                                 "but no reason in permissions.WILDCARD_REASONS")
            Validations.of(policy).acknowledge(cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::{nag_name(resolved)}]", reason=reason))
    return policy


def nag_name(value: Any) -> str:
    """A resolved ARN as cdk-nag names it in a finding: ``<AWS::Region>``, ``<Logical.Attr>`` ..."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter).join(nag_name(part) for part in parts)
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return json.dumps(value)


def ec2_arn(stack: cdk.Stack, resource: str, name: str = "*") -> str:
    """ARN of an EC2 resource of this stack's account and region (``*`` for any)."""
    return stack.format_arn(service="ec2", resource=resource, resource_name=name)


def image_arn(stack: cdk.Stack, image_id: str) -> str:
    """ARN of an AMI: images have no account in their ARN."""
    return stack.format_arn(service="ec2", resource="image", resource_name=image_id, account="")


def terminate_tagged(stack: cdk.Stack, stack_tag: str) -> iam.PolicyStatement:
    """Terminate only instances carrying this stack's tag."""
    return iam.PolicyStatement(
        sid="TerminateOwnInstances",
        actions=["ec2:TerminateInstances"],
        resources=[ec2_arn(stack, "instance")],
        conditions={"StringEquals": {f"aws:ResourceTag/{TAG_STACK}": stack_tag}},
    )


def workflow(stack: cdk.Stack, table_arn: str, launch: LaunchResources,
             stack_tag: str) -> list[iam.PolicyStatement]:
    """What the job workflow's Task states call, and nothing more."""
    launched = [ec2_arn(stack, kind) for kind in ("instance", "volume", "network-interface")]
    return [
        iam.PolicyStatement(
            sid="JobRecords",
            actions=["dynamodb:GetItem", "dynamodb:UpdateItem"],
            resources=[table_arn],
        ),
        # An instant fleet launches with the caller's own permissions, so the
        # role needs RunInstances on everything the launch uses or creates.
        iam.PolicyStatement(
            sid="LaunchFromTemplate",
            actions=["ec2:CreateFleet", "ec2:RunInstances"],
            resources=[ec2_arn(stack, "fleet"), *launch.launch_templates(), *launch.subnets,
                       launch.security_group, *launch.images(), *launched,
                       ec2_arn(stack, "spot-instances-request")],
        ),
        iam.PolicyStatement(
            sid="TagAtLaunchOnly",
            actions=["ec2:CreateTags"],
            resources=[ec2_arn(stack, "fleet"), *launched, ec2_arn(stack, "spot-instances-request")],
            conditions={"StringEquals": {"ec2:CreateAction": ["CreateFleet", "RunInstances"]}},
        ),
        # Each capacity request gets a version of the job's launch template carrying the job's user data.
        iam.PolicyStatement(
            sid="JobLaunchTemplateVersions",
            actions=["ec2:CreateLaunchTemplateVersion", "ec2:DeleteLaunchTemplateVersions"],
            resources=launch.launch_templates(),
        ),
        iam.PolicyStatement(
            sid="PassInstanceRole",
            actions=["iam:PassRole"],
            resources=[launch.instance_role],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        iam.PolicyStatement(
            sid="CreateSpotServiceLinkedRole",
            actions=["iam:CreateServiceLinkedRole"],
            resources=[stack.format_arn(service="iam", region="", resource="role",
                                        resource_name=SPOT_SERVICE_LINKED_ROLE)],
            conditions={"StringEquals": {"iam:AWSServiceName": SPOT_SERVICE}},
        ),
        iam.PolicyStatement(
            sid="WatchInstances",
            actions=["ec2:DescribeInstanceStatus"],
            resources=["*"],
        ),
        terminate_tagged(stack, stack_tag),
    ]


def api(stack: cdk.Stack, *, table_arn: str, index_names: Sequence[str], state_machine_arn: str,
        state_machine_name: str, job_log_group_arn: str, function_log_group_arns: Sequence[str],
        stack_tag: str, sweeper_rule_name: str, launch_template_arn: str,
        gpu_launch_template_arn: str = "") -> list[iam.PolicyStatement]:
    """What the REST API, the event handlers and the sweeper need."""
    return [
        # The clean-up handlers delete the launch template versions a stopped execution left behind.
        iam.PolicyStatement(
            sid="DeleteLeftoverLaunchTemplateVersions",
            actions=["ec2:DeleteLaunchTemplateVersions"],
            resources=[t for t in (launch_template_arn, gpu_launch_template_arn) if t],
        ),
        iam.PolicyStatement(
            sid="FunctionLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=list(function_log_group_arns),
        ),
        iam.PolicyStatement(
            sid="JobRecords",
            actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"],
            resources=[table_arn, *(f"{table_arn}/index/{name}" for name in index_names)],
        ),
        iam.PolicyStatement(
            sid="StartJobExecutions",
            actions=["states:StartExecution"],
            resources=[state_machine_arn],
        ),
        iam.PolicyStatement(
            sid="ManageJobExecutions",
            actions=["states:DescribeExecution", "states:StopExecution"],
            resources=[stack.format_arn(service="states", resource="execution",
                                        resource_name=f"{state_machine_name}:*",
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)],
        ),
        # Task tokens of service integrations are not resources IAM can name.
        iam.PolicyStatement(
            sid="AnswerTaskTokens",
            actions=["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="FindInstances",
            actions=["ec2:DescribeInstances", "ec2:DescribeLaunchTemplateVersions"],
            resources=["*"],
        ),
        terminate_tagged(stack, stack_tag),
        # A job that states its resources gets the instance types that meet them when it is scheduled.
        iam.PolicyStatement(
            sid="ChooseInstanceTypes",
            actions=["ec2:DescribeInstanceTypes"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="ReadJobLogs",
            actions=["logs:GetLogEvents", "logs:DescribeLogStreams"],
            resources=[job_log_group_arn],
        ),
        iam.PolicyStatement(
            sid="SweeperSchedule",
            actions=["events:EnableRule", "events:DisableRule"],
            resources=[stack.format_arn(service="events", resource="rule", resource_name=sweeper_rule_name)],
        ),
        iam.PolicyStatement(
            sid="PublishJobEvents",
            actions=["events:PutEvents"],
            resources=[stack.format_arn(service="events", resource="event-bus", resource_name="default")],
        ),
        *job_extras(stack, table_arn=table_arn, state_machine_name=state_machine_name),
    ]


def failed_events(dead_letter_queue_arn: str) -> list[iam.PolicyStatement]:
    """Lambda sends a failed asynchronous invocation to its on-failure destination as the function's role."""
    return [
        iam.PolicyStatement(
            sid="FailedEventsToDeadLetters",
            actions=["sqs:SendMessage"],
            resources=[dead_letter_queue_arn],
        ),
    ]


def job_extras(stack: cdk.Stack, *, table_arn: str, state_machine_name: str) -> list[iam.PolicyStatement]:
    """What on_job_change and the logs and timeline routes add: the table's stream, Spot prices, histories."""
    return [
        iam.PolicyStatement(
            sid="ReadJobTableStream",
            actions=["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                     "dynamodb:ListStreams"],
            resources=[f"{table_arn}/stream/*"],
        ),
        iam.PolicyStatement(
            sid="SpotPriceHistory",
            actions=["ec2:DescribeSpotPriceHistory"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="ReadJobHistory",
            actions=["states:GetExecutionHistory"],
            resources=[stack.format_arn(service="states", resource="execution",
                                        resource_name=f"{state_machine_name}:*",
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)],
        ),
    ]


ECR_PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]


def instance(stack: cdk.Stack, *, job_log_group_arn: str, parameter_prefix: str,
             secret_prefix: str, cross_account: bool = False) -> list[iam.PolicyStatement]:
    """What a job instance may do: ship the container's output, pull its image, read its secrets.

    Images and secrets are this account's, in this region, unless ``cross_account``
    (the ``allowCrossAccount`` context value) widens both to any account and region.
    """
    secret_name = f"{secret_prefix.rstrip('/')}/*"
    return [
        iam.PolicyStatement(
            sid="WriteJobLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[job_log_group_arn],
        ),
        # GetAuthorizationToken has no resource-level permissions.
        iam.PolicyStatement(
            sid="EcrLogin",
            actions=["ecr:GetAuthorizationToken"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="ReadJobParameters",
            actions=["ssm:GetParameter", "ssm:GetParameters"],
            resources=[stack.format_arn(service="ssm", resource="parameter",
                                        resource_name=f"{parameter_prefix.strip('/')}/*")],
        ),
        *(shared_images_and_secrets(stack, secret_name) if cross_account else [
            iam.PolicyStatement(
                sid="EcrPull",
                actions=ECR_PULL,
                resources=[stack.format_arn(service="ecr", resource="repository", resource_name="*")],
            ),
            iam.PolicyStatement(
                sid="ReadJobSecrets",
                actions=["secretsmanager:GetSecretValue"],
                resources=[stack.format_arn(service="secretsmanager", resource="secret", resource_name=secret_name,
                                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)],
            ),
        ]),
    ]


def shared_images_and_secrets(stack: cdk.Stack, secret_name: str) -> list[iam.PolicyStatement]:
    """Pull images and read secrets (under the prefix) of any account and region that shares them with this role.

    The other account's repository policy, secret policy and KMS key policy
    must grant this role as well: cross-account access needs both sides.
    """
    return [
        iam.PolicyStatement(
            sid="EcrPullAnyAccount",
            actions=ECR_PULL,
            resources=[stack.format_arn(service="ecr", resource="repository", resource_name="*",
                                        region="*", account="*")],
        ),
        iam.PolicyStatement(
            sid="ReadJobSecretsAnyAccount",
            actions=["secretsmanager:GetSecretValue"],
            resources=[stack.format_arn(service="secretsmanager", resource="secret", resource_name=secret_name,
                                        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME, region="*", account="*")],
        ),
        # Secrets Manager cannot share a secret encrypted with the AWS managed key:
        # the other account's own key decrypts it, only on Secrets Manager's behalf.
        iam.PolicyStatement(
            sid="DecryptSharedSecrets",
            actions=["kms:Decrypt"],
            resources=[stack.format_arn(service="kms", resource="key", resource_name="*", region="*", account="*")],
            conditions={"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
        ),
    ]


def schedules(stack: cdk.Stack, *, table_arn: str, schedule_arn: str, scheduler_role_arn: str,
              dead_letter_queue_arn: str) -> list[iam.PolicyStatement]:
    """What the API and ``on_schedule`` need for recurring schedules (``schedule_arn``: any in the group)."""
    return [
        iam.PolicyStatement(
            sid="ManageSchedules",
            actions=["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"],
            resources=[schedule_arn],
        ),
        # EventBridge Scheduler checks that the caller may pass the role its schedule invokes as.
        iam.PolicyStatement(
            sid="PassSchedulerRole",
            actions=["iam:PassRole"],
            resources=[scheduler_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        ),
        # A deleted schedule's record goes; job records are never deleted (their keys are UUIDs).
        iam.PolicyStatement(
            sid="DeleteScheduleRecords",
            actions=["dynamodb:DeleteItem"],
            resources=[table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["sch-*"]}},
        ),
        # Lambda sends a firing that failed after its retries to the schedules' dead letters as the function's role.
        iam.PolicyStatement(
            sid="FailedFiringsToDeadLetters",
            actions=["sqs:SendMessage"],
            resources=[dead_letter_queue_arn],
        ),
    ]


def scheduler(*, function_arn: str, dead_letter_queue_arn: str) -> list[iam.PolicyStatement]:
    """The scheduler execution role: invoke on_schedule, and park an undeliverable firing; nothing else."""
    return [
        iam.PolicyStatement(sid="InvokeOnSchedule", actions=["lambda:InvokeFunction"], resources=[function_arn]),
        iam.PolicyStatement(sid="UndeliveredFirings", actions=["sqs:SendMessage"], resources=[dead_letter_queue_arn]),
    ]
