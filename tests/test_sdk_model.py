"""The workflow asks AWS only for what Step Functions' own SDK model knows: checked against botocore 1.40.0.

Step Functions refuses, when the state machine is created, an aws-sdk parameter
its SDK model does not know; its model is not the newest. botocore 1.40.0
(2025-07-31) stands for it here: every aws-sdk Task's parameters and every
path read from a task's result must be in that release's models (see
tests/sdk_model.py, which also regenerates the committed extract).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from infra import definition
from tests.sdk_model import RELEASE, Models, aws_sdk_tasks, check


@pytest.fixture(scope="module")
def models() -> Models:
    """The committed extract of botocore 1.40.0's models."""
    loaded = Models.load()
    assert loaded.release == RELEASE == "1.40.0"
    return loaded


def test_every_aws_sdk_task_matches_the_year_old_sdk_model(models):
    """Every parameter and every read of a result names a member botocore 1.40.0 knows, with valid values."""
    assert check(definition.states(), models) == []


def test_every_task_is_an_aws_sdk_task_the_check_sees():
    """No Task escapes the check (an optimized integration would need its own)."""
    states = definition.states()
    tasks = {t.state for t in aws_sdk_tasks(states)}
    assert tasks == {name for name, state in states.items() if state["Type"] == "Task"}
    assert {(t.service, t.operation) for t in aws_sdk_tasks(states)} >= {
        ("ec2", "CreateLaunchTemplateVersion"), ("ec2", "CreateFleet"), ("ec2", "DeleteLaunchTemplateVersions"),
        ("ec2", "DescribeInstanceStatus"), ("ec2", "TerminateInstances"), ("dynamodb", "UpdateItem")}


def test_the_check_refuses_launch_template_specification_user_data(models):
    """The member CreateFleet gained in 2026-07, which Step Functions refused, is caught."""
    states = definition.states()
    spec = states["RequestCapacity"]["Parameters"]["LaunchTemplateConfigs"][0]["LaunchTemplateSpecification"]
    spec["LaunchTemplateSpecificationUserData.$"] = "$.userData"
    assert check(states, models) == [
        "RequestCapacity: Parameters.LaunchTemplateConfigs[0].LaunchTemplateSpecification: "
        "LaunchTemplateSpecificationUserData is not a member of FleetLaunchTemplateSpecificationRequest "
        "in botocore 1.40.0"]


def _set(state: str, path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(states: dict[str, Any]) -> None:
        target = states[state]
        for step in path[:-1]:
            target = target[step]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return change


MISTAKES = [
    ("unknown operation", _set("CheckInstance", ["Resource"], "arn:aws:states:::aws-sdk:ec2:describeInstanceState"),
     "ec2 has no operation DescribeInstanceState"),
    ("wire name, not the model's", _set("TerminateInstance", ["Parameters", "InstanceId.$"], "$.x"),
     "InstanceId is not a member of TerminateInstancesRequest"),
    ("required member missing", _set("RequestCapacity", ["Parameters", "LaunchTemplateConfigs"], None),
     "required member LaunchTemplateConfigs of CreateFleetRequest is missing"),
    ("static value of the wrong type", _set("CheckInstance", ["Parameters", "IncludeAllInstances"], "true"),
     '"true" is not a boolean'),
    ("value outside the enum", _set("RequestCapacity", ["Parameters", "SpotOptions", "AllocationStrategy"],
                                    "cheapest"), "'cheapest' is not one of SpotAllocationStrategy's values"),
    ("intrinsic of the wrong type", _set("DeleteLaunchTemplateVersion", ["Parameters", "Versions.$"],
                                         "States.Format('{}', $.launchTemplateVersion.number)"),
     "States.Format returns a string, VersionStringList is a list"),
    ("result selector reads nothing", _set("CheckInstance", ["ResultSelector", "statuses.$"], "$.InstanceStatus"),
     "$.InstanceStatus is not in DescribeInstanceStatus's result"),
    ("later read of a result names nothing", _set("GotInstance?", ["Choices", 0, "Variable"],
                                                  "$.fleet.Instances[0].InstanceId[0]"),
     "$.fleet.Instances[0].InstanceId[0] names nothing in the result RequestCapacity (CreateFleet)"),
    ("read of a copied result names nothing", _set("LaunchRefused", ["Parameters", "reason.$"],
                                                   "States.Format('{}', $.launchErrors.first.Code)"),
     "$.launchErrors.first.Code names nothing in the result RequestCapacity (CreateFleet)"),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_the_check_finds_each_kind_of_mistake(models, change, expected):
    """Each kind of mistake Step Functions would refuse, or a read that finds nothing, is reported."""
    states = copy.deepcopy(definition.states())
    change(states)
    problems = check(states, models)
    assert problems and expected in problems[0], problems  # (later reads may follow from the first)
