"""Recurring schedules in AWS: EventBridge Scheduler's side of the stack.

- a schedule group the stack owns: the API creates one schedule per recurring
  schedule in it, and may touch no schedule outside it;
- a scheduler execution role that may invoke only ``on_schedule`` (and send
  an undeliverable firing to the dead-letter queue): the one role the API may
  pass;
- a dead-letter queue for firings that could not be delivered after the
  retries (the runtime's ``scheduler.RETRY_POLICY``), or that failed in the
  function after Lambda's retries, with an alarm on it.

Idle, none of it costs anything: a schedule is billed per invocation.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from chalicelib import config
from infra import permissions

FUNCTION = "on_schedule"
HANDLER_RETRIES = 2
MAX_EVENT_AGE = cdk.Duration.hours(1)


class Schedules(Construct):
    """The schedule group, the scheduler's role and the dead letters of firings."""

    def __init__(self, scope: Construct, construct_id: str, *, group_name: str) -> None:
        super().__init__(scope, construct_id)
        self.group = scheduler.CfnScheduleGroup(self, "Group", name=group_name)
        self.group_name = group_name
        self.dead_letters = sqs.Queue(self, "FailedFirings", encryption=sqs.QueueEncryption.SQS_MANAGED,
                                      enforce_ssl=True, retention_period=cdk.Duration.days(14))
        Validations.of(self.dead_letters).acknowledge(cdk.Acknowledgment(
            id="AwsSolutions-SQS3",
            reason="This queue is itself the dead-letter queue of the schedules' firings; an alarm watches it."))
        stack = cdk.Stack.of(self)
        self.role = iam.Role(
            self, "SchedulerRole", description="jobscheduler schedules: invoke on_schedule, nothing else",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={
                "StringEquals": {"aws:SourceAccount": stack.account},
                # AWS's setup guide names the schedule group as the source; either form keeps out other groups.
                "ArnLike": {"aws:SourceArn": [self.group_arn(), self.schedule_arn("*")]}}))

    def group_arn(self) -> str:
        """ARN of the stack's schedule group."""
        return cdk.Stack.of(self).format_arn(service="scheduler", resource="schedule-group",
                                             resource_name=self.group_name)

    def schedule_arn(self, name: str) -> str:
        """ARN of a schedule in the group (``*``: any of them)."""
        return cdk.Stack.of(self).format_arn(service="scheduler", resource="schedule",
                                             resource_name=f"{self.group_name}/{name}")

    def environment(self) -> dict[str, str]:
        """The runtime's settings for schedules, on every function (the target ARN only on the API's)."""
        return {config.SCHEDULE_GROUP: self.group_name, config.SCHEDULER_ROLE_ARN: self.role.role_arn,
                config.SCHEDULE_DEAD_LETTER_ARN: self.dead_letters.queue_arn}

    def connect(self, function: cdk.CfnResource, api_handler: cdk.CfnResource, after: Construct) -> None:
        """The scheduler role invokes ``function``; the API learns its ARN; failures end in the dead letters.

        ``after``: the API role's policy, which must exist before Lambda checks
        the on-failure destination.
        """
        arn = function.get_att("Arn").to_string()
        api_handler.add_property_override(f"Environment.Variables.{config.SCHEDULE_TARGET_ARN}", arn)
        permissions.attach(cdk.Stack.of(self), "SchedulerPolicy", self.role,
                           permissions.scheduler(function_arn=arn, dead_letter_queue_arn=self.dead_letters.queue_arn))
        failures = lambda_.CfnEventInvokeConfig(
            self, "OnScheduleFailures", function_name=function.ref, qualifier="$LATEST",
            maximum_retry_attempts=HANDLER_RETRIES, maximum_event_age_in_seconds=int(MAX_EVENT_AGE.to_seconds()),
            destination_config=lambda_.CfnEventInvokeConfig.DestinationConfigProperty(
                on_failure=lambda_.CfnEventInvokeConfig.OnFailureProperty(destination=self.dead_letters.queue_arn)))
        failures.node.add_dependency(after)

    def alarm(self) -> cloudwatch.Alarm:
        """A firing waits in the dead letters: no job was made for it."""
        return cloudwatch.Alarm(
            self, "FailedFiringsWaiting",
            alarm_description="A schedule's firing could not make its job after every retry: read it in the "
                              "schedules' FailedFirings queue and on_schedule's log, then act on it by hand",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"),
            threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
