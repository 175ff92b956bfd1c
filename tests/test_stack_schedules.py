"""The stack's side of recurring schedules, proven by synthesis (the session's one ``synth``).

The schedule group, the ``on_schedule`` function EventBridge Scheduler
invokes, the role it invokes it as, the firings' dead-letter queue and its
alarm, and IAM scoped to the group. cdk-nag and cfn-lint run over the same
template in tests/test_stack.py.
"""

from __future__ import annotations

from typing import Any

from chalicelib import config
from infra.app import DEFAULT_STACK_NAME
from tests.test_stack import ACCOUNT, REGION, TOPIC, Synth, actions, all_statements, flat, functions

GROUP = f"{DEFAULT_STACK_NAME}-schedules"
SCHEDULE_ACTIONS = {"scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"}


def by_sid(synth: Synth, role_path: str) -> dict[str, dict[str, Any]]:
    """The statements attached to a role, by Sid."""
    return {s["Sid"]: s for s in synth.statements(role_path)}


def test_the_stack_owns_a_schedule_group(synth: Synth) -> None:
    """One schedule group, named after the stack; every function is told its name."""
    (group,) = synth.resources("AWS::Scheduler::ScheduleGroup").values()
    assert group["Properties"]["Name"] == GROUP
    for name, function in functions(synth).items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[config.SCHEDULE_GROUP] == GROUP, name
        assert variables[config.SCHEDULER_ROLE_ARN] == {
            "Fn::GetAtt": [synth.logical_id("Schedules/SchedulerRole/Resource"), "Arn"]}
        assert variables[config.SCHEDULE_DEAD_LETTER_ARN] == {
            "Fn::GetAtt": [synth.logical_id("Schedules/FailedFirings/Resource"), "Arn"]}


def test_on_schedule_is_packaged_and_the_api_targets_it(synth: Synth) -> None:
    """Chalice packages on_schedule; the API's function (which creates the schedules) knows its ARN."""
    assert "OnSchedule" in functions(synth)
    api = functions(synth)["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert api[config.SCHEDULE_TARGET_ARN] == {"Fn::GetAtt": ["OnSchedule", "Arn"]}
    # No rule triggers it: only EventBridge Scheduler, through the scheduler role.
    targets = [t["Arn"] for r in synth.resources("AWS::Events::Rule").values() for t in r["Properties"]["Targets"]]
    assert {"Fn::GetAtt": ["OnSchedule", "Arn"]} not in targets


def test_scheduler_role_may_invoke_only_on_schedule(synth: Synth) -> None:
    """Assumed only by EventBridge Scheduler for this account's schedules in the group; invokes on_schedule alone."""
    role = synth.template["Resources"][synth.logical_id("Schedules/SchedulerRole/Resource")]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    group, schedules = (flat(arn) for arn in trust["Condition"]["ArnLike"]["aws:SourceArn"])
    assert group.endswith(f"{ACCOUNT}:schedule-group/{GROUP}") and schedules.endswith(f"{ACCOUNT}:schedule/{GROUP}/*")
    statements = by_sid(synth, "Schedules/SchedulerRole/Resource")
    assert set(statements) == {"InvokeOnSchedule", "UndeliveredFirings"}
    assert actions(statements["InvokeOnSchedule"]) == {"lambda:InvokeFunction"}
    assert statements["InvokeOnSchedule"]["Resource"] == {"Fn::GetAtt": ["OnSchedule", "Arn"]}
    assert actions(statements["UndeliveredFirings"]) == {"sqs:SendMessage"}
    assert statements["UndeliveredFirings"]["Resource"] == {
        "Fn::GetAtt": [synth.logical_id("Schedules/FailedFirings/Resource"), "Arn"]}


def test_api_role_manages_schedules_only_in_the_group_and_passes_only_the_scheduler_role(synth: Synth) -> None:
    """Create, update, delete in the stack's group; PassRole of the scheduler role to the scheduler only."""
    statements = by_sid(synth, "ApiRole/Resource")
    manage = statements["ManageSchedules"]
    assert actions(manage) == SCHEDULE_ACTIONS
    assert flat(manage["Resource"]) == f"arn:<AWS::Partition>:scheduler:{REGION}:{ACCOUNT}:schedule/{GROUP}/*"
    passing = statements["PassSchedulerRole"]
    assert actions(passing) == {"iam:PassRole"}
    assert passing["Resource"] == {"Fn::GetAtt": [synth.logical_id("Schedules/SchedulerRole/Resource"), "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    deleting = statements["DeleteScheduleRecords"]
    assert actions(deleting) == {"dynamodb:DeleteItem"}
    assert deleting["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["sch-*"]}}
    # No other statement touches schedules.
    assert [s for s in all_statements(synth) if actions(s) & SCHEDULE_ACTIONS] == [manage]


def test_failed_firings_reach_their_dead_letter_queue_which_an_alarm_watches(synth: Synth) -> None:
    """on_schedule's failed invocations go to the encrypted FailedFirings queue; one waiting message alarms."""
    queue = synth.logical_id("Schedules/FailedFirings/Resource")
    props = synth.template["Resources"][queue]["Properties"]
    assert props["SqsManagedSseEnabled"] is True
    (config_,) = [c["Properties"] for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
                  if c["Properties"]["FunctionName"] == {"Ref": "OnSchedule"}]
    assert config_["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert config_["MaximumRetryAttempts"] == 2 and config_["Qualifier"] == "$LATEST"
    invoke_config = next(c for c in synth.resources("AWS::Lambda::EventInvokeConfig").values()
                         if c["Properties"]["FunctionName"] == {"Ref": "OnSchedule"})
    assert synth.logical_id("ApiPolicy/Resource") in invoke_config["DependsOn"]
    by_sid = {s["Sid"]: s for s in synth.statements("ApiRole/Resource")}
    assert by_sid["FailedFiringsToDeadLetters"]["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    alarm = synth.template["Resources"][synth.logical_id("Schedules/FailedFiringsWaiting/Resource")]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert alarm["Threshold"] == 1 and alarm["TreatMissingData"] == "notBreaching"


def test_schedule_alarm_notifies_the_topic_when_given(synth: Synth, synth_with_choices: Synth) -> None:
    """With alarmTopicArn, the failed-firings alarm notifies it too."""
    assert "AlarmActions" not in synth.template["Resources"][
        synth.logical_id("Schedules/FailedFiringsWaiting/Resource")]["Properties"]
    chosen = synth_with_choices.template["Resources"][
        synth_with_choices.logical_id("Schedules/FailedFiringsWaiting/Resource")]["Properties"]
    assert chosen["AlarmActions"] == [TOPIC]
