"""Ask Step Functions itself whether the workflow definition is valid (``make check-deploy``).

AWS checks more than moto does when a state machine is created: among them,
that every aws-sdk Task's parameters are members its own SDK model knows.
``ValidateStateMachineDefinition`` runs those checks without creating
anything. With no AWS credentials it says so and exits 0 (the offline checks
of ``make check-deploy`` still run).
"""

from __future__ import annotations

import sys

import boto3
from botocore.exceptions import ClientError, NoRegionError

from infra import definition

# Plausible values for the placeholders CDK fills at deploy time: the checks
# read names and shapes, not whether these resources exist.
SAMPLE_VALUES = {"JobsTable": "JobScheduler-Jobs", "StackTag": "JobScheduler"}


def sample_definition() -> str:
    """The definition with each placeholder it has filled by a plausible value."""
    return definition.render({name: SAMPLE_VALUES[name] for name in definition.placeholders()})


def main() -> int:
    """Print each diagnostic; exit 1 if Step Functions reports an error."""
    session = boto3.session.Session()
    if session.get_credentials() is None:
        print("validate-state-machine-definition: skipped (no AWS credentials)")
        return 0
    try:
        answer = session.client("stepfunctions").validate_state_machine_definition(
            definition=sample_definition(), type="STANDARD")
    except NoRegionError:
        print("validate-state-machine-definition: set AWS_REGION (or AWS_DEFAULT_REGION)")
        return 1
    except ClientError as exc:
        print(f"validate-state-machine-definition: {exc}")
        return 1
    for item in answer.get("diagnostics", []):
        print(f"{item['severity']} {item['code']} at {item.get('location', '-')}: {item['message']}")
    print(f"validate-state-machine-definition: {answer['result']}")
    return 0 if answer["result"] == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
