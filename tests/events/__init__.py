"""The events AWS delivers to the Lambda functions, as AWS documents them.

Each ``*.json`` here is a documented sample, copied with its shape intact and
its page named in ``_source`` (which the loader drops: AWS sends no such key).
The builders below fill in only what names this test's resources (ids, ARNs,
times, images); a test that needs another shape must add another documented
sample, never edit a field list by hand.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"


def load(name: str) -> dict[str, Any]:
    """The documented sample ``name``.json, without its ``_source``."""
    sample = json.loads((HERE / f"{name}.json").read_text())
    sample.pop("_source")
    return dict(sample)


def sources() -> dict[str, str]:
    """Each sample's documentation page, by file name."""
    return {path.stem: json.loads(path.read_text())["_source"] for path in sorted(HERE.glob("*.json"))}


def _envelope(name: str, resources: list[str], account: str, region: str) -> dict[str, Any]:
    event = load(name)
    event.update(id=str(uuid.uuid4()), time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 account=account, region=region, resources=resources)
    return event


def spot_interruption_warning(instance_id: str, account: str = ACCOUNT, region: str = REGION) -> dict[str, Any]:
    """EC2's two-minute warning before Spot reclaims ``instance_id``."""
    event = _envelope("ec2-spot-instance-interruption-warning",
                      [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"], account, region)
    event["detail"].update({"instance-id": instance_id, "instance-action": "terminate"})
    return event


def execution_status_change(execution_arn: str, state_machine_arn: str, status: str) -> dict[str, Any]:
    """Step Functions' event for an execution that reached ``status`` (FAILED, TIMED_OUT, ABORTED ...)."""
    _, _, _, region, account, *_ = execution_arn.split(":")
    event = _envelope("step-functions-execution-status-change", [execution_arn], account, region)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    event["detail"].update(executionArn=execution_arn, stateMachineArn=state_machine_arn,
                           name=execution_arn.rsplit(":", 1)[1], status=status, startDate=now_ms - 1000,
                           stopDate=None if status == "RUNNING" else now_ms)
    return event


def scheduled_event(rule_arn: str) -> dict[str, Any]:
    """EventBridge's event for one firing of a schedule rule."""
    _, _, _, region, account, _ = rule_arn.split(":")
    return _envelope("eventbridge-scheduled-event", [rule_arn], account, region)


def stream_event(changes: list[tuple[dict[str, Any] | None, dict[str, Any]]], stream_arn: str,
                 keys: tuple[str, ...] = ("jobId",)) -> dict[str, Any]:
    """What Lambda hands the function for a batch of a NEW_AND_OLD_IMAGES stream.

    ``changes`` are (old item or None, new item) in DynamoDB JSON; a record
    without an old item is an INSERT.
    """
    (sample,) = load("dynamodb-stream-modify")["Records"]
    region = stream_arn.split(":")[3]
    records = []
    for number, (old, new) in enumerate(changes, start=1):
        record = copy.deepcopy(sample)
        images = {"OldImage": old, "NewImage": new} if old is not None else {"NewImage": new}
        record["dynamodb"].pop("OldImage")
        record["dynamodb"].update(Keys={k: new[k] for k in keys}, SequenceNumber=str(number * 100),
                                  SizeBytes=len(json.dumps(images)), **images)
        record.update(eventID=uuid.uuid4().hex, eventName="MODIFY" if old is not None else "INSERT",
                      awsRegion=region, eventSourceARN=stream_arn)
        records.append(record)
    return {"Records": records}


def as_lambda_delivers(records: list[dict[str, Any]], stream_arn: str) -> dict[str, Any]:
    """GetRecords' records as Lambda's event source mapping passes them on: each names its stream."""
    return {"Records": [{**record, "eventSourceARN": stream_arn} for record in records]}


def shape(value: Any) -> Any:
    """The keys of an event, nested: what two events of the same kind share whatever their values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [shape(value[0])]
    return None


def api_request(method: str, path: str, body: Any, user_arn: str, resource: str | None = None) -> dict[str, Any]:
    """API Gateway's proxy event for a SigV4-signed REST call by ``user_arn`` (IAM auth fills the identity)."""
    event = load("apigateway-rest-proxy-request")
    account = user_arn.split(":")[4]
    event.update(resource=resource or path, path=path, httpMethod=method, body=json.dumps(body),
                 headers={"Content-Type": "application/json", "Host": event["requestContext"]["domainName"]},
                 multiValueHeaders={"Content-Type": ["application/json"],
                                    "Host": [event["requestContext"]["domainName"]]},
                 queryStringParameters=None, multiValueQueryStringParameters=None)
    context = event["requestContext"]
    context.update(httpMethod=method, path=f"/prod{path}", resourcePath=resource or path,
                   stage="prod", accountId=account)
    context["identity"].update(userArn=user_arn, accountId=account, caller=user_arn.rpartition("/")[2],
                               accessKey="AKIAIOSFODNN7EXAMPLE")
    return event
