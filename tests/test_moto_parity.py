"""The emulator behaves like AWS where the workflow relies on it (jobscheduler/local/moto_parity.py)."""

from __future__ import annotations

import re
import threading
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError


def test_conditional_writes_race_with_one_winner(aws):
    """Two threads racing the same conditional update: exactly one wins, every round, as in DynamoDB."""
    ddb = boto3.client("dynamodb")
    both_won = 0
    for round_ in range(150):
        key = {"jobId": {"S": f"race-{round_}"}}
        ddb.put_item(TableName=aws.table, Item={**key, "status": {"S": "Requested"}})
        wins: list[str] = []
        start = threading.Barrier(2)

        def claim(name: str, key: dict = key, wins: list = wins, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                ddb.update_item(TableName=aws.table, Key=key, UpdateExpression="SET #s = :me",
                                ConditionExpression="#s = :requested", ExpressionAttributeNames={"#s": "status"},
                                ExpressionAttributeValues={":me": {"S": name}, ":requested": {"S": "Requested"}})
                wins.append(name)
            except ClientError:
                pass

        threads = [threading.Thread(target=claim, args=(name,)) for name in ("workflow", "callback")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        both_won += len(wins) == 2
        assert len(wins) >= 1
    assert both_won == 0


_KEY = {"jobId": {"S": "read-while-written"}}
_ONE, _TWO = {"M": {"v": {"N": "1"}}}, {"M": {"v": {"N": "2"}}}
# Requests whose answer moto makes from the live item; each reads the item back whole.
_READS = {
    "GetItem": lambda ddb, table: ddb.get_item(TableName=table, Key=_KEY, ConsistentRead=True)["Item"],
    "UpdateItem ALL_NEW": lambda ddb, table: ddb.update_item(
        TableName=table, Key=_KEY, UpdateExpression="SET seen = :t", ExpressionAttributeValues={":t": {"BOOL": True}},
        ReturnValues="ALL_NEW")["Attributes"],
    "PutItem ALL_OLD": lambda ddb, table: ddb.put_item(
        TableName=table, Item={**_KEY, "first": _TWO, "last": _TWO}, ReturnValues="ALL_OLD")["Attributes"],
}


@pytest.mark.parametrize("read", list(_READS))
def test_a_read_sees_an_item_before_or_after_a_write_never_half_written(aws, read):
    """A write from another thread (the workflow's, a callback's) comes while moto makes a read's answer from the
    item: the answer is the item before the write or after it, never some of each (and never a 500: CI once got
    "dictionary changed size during iteration" from a GetItem)."""
    from moto.dynamodb.models import utilities
    from moto.dynamodb.models.dynamo_type import DynamoType

    ddb = boto3.client("dynamodb")
    ddb.put_item(TableName=aws.table, Item={**_KEY, "first": _ONE, "last": _ONE})
    writer: list[threading.Thread] = []

    def write_now(value: object) -> None:
        # moto turns the item's values into JSON one by one: when it reaches the first map's number, the
        # answer has none of "last" yet. The write comes then, and is given half a second.
        if isinstance(value, DynamoType) and (value.type, value.value) == ("N", "1") and not writer:
            writer.append(threading.Thread(target=ddb.update_item, kwargs={
                "TableName": aws.table, "Key": _KEY, "UpdateExpression": "SET #f = :two, #l = :two",
                "ExpressionAttributeNames": {"#f": "first", "#l": "last"},
                "ExpressionAttributeValues": {":two": _TWO}}))
            writer[0].start()
            writer[0].join(timeout=0.5)

    to_dict, to_regular_json = utilities.dynamo_to_dict, DynamoType.to_regular_json

    def dynamo_to_dict(value):
        write_now(value)
        return to_dict(value)

    def regular_json(self):
        write_now(self)
        return to_regular_json(self)

    with mock.patch.object(utilities, "dynamo_to_dict", dynamo_to_dict), \
            mock.patch.object(DynamoType, "to_regular_json", regular_json):
        answer = _READS[read](ddb, aws.table)
    assert writer, "the write never came while the answer was made"
    writer[0].join()
    assert answer["first"] == answer["last"] == _ONE
    now = ddb.get_item(TableName=aws.table, Key=_KEY, ConsistentRead=True)["Item"]
    assert now["first"] == now["last"] == _TWO


def test_spot_prices_found_by_type_answer_as_moto_does(aws):
    """Speed shim `_spot_prices_found_by_type`: for random types (some unknown, some twice) and filters (zones,
    types, a filter moto does not know), it answers what moto's own filtering answers, in the same order;
    DescribeSpotPriceHistory answers from it."""
    import random

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instance_types import INSTANCE_TYPE_OFFERINGS
    from moto.ec2.models.spot_requests import SpotRequestBackend

    shim = SpotRequestBackend.describe_spot_price_history
    moto = shim.__wrapped__
    assert shim is not moto
    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    offerings = INSTANCE_TYPE_OFFERINGS["availability-zone"]["us-east-1"]
    types = sorted({o["InstanceType"] for o in offerings}) + ["no-such.type"]
    zones = sorted({o["Location"] for o in offerings}) + ["us-east-1x"]
    rng = random.Random(17)
    found = 0
    for _ in range(300):
        asked = rng.sample(types, rng.randint(0, 3))
        asked += rng.sample(asked, min(len(asked), rng.randint(0, 1)))
        filters = {}
        if rng.random() < 0.7:
            filters["availability-zone"] = rng.sample(zones, rng.randint(1, 2))
        if rng.random() < 0.3:
            filters["instance-type"] = rng.sample(asked or types, 1)
        if rng.random() < 0.1:
            filters["product-description"] = ["Linux/UNIX"]
        answer = shim(backend, asked, filters)
        assert answer == moto(backend, asked, filters), (asked, filters)
        found += bool(answer)
    assert found > 50  # most draws find prices: the comparison is not between empty answers

    ec2 = boto3.client("ec2")
    history = ec2.describe_spot_price_history(
        InstanceTypes=["m5.large", "c5.large"], Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])
    assert sorted(p["InstanceType"] for p in history["SpotPriceHistory"]) == ["c5.large", "m5.large"]
    assert {p["AvailabilityZone"] for p in history["SpotPriceHistory"]} == {"us-east-1a"}


def test_shims_refuse_a_moto_release_they_were_not_tested_with():
    """apply() checks moto's version: a release outside the tested range is refused, naming the range."""
    from jobscheduler.local import moto_parity

    low, high = moto_parity.TESTED_MOTO
    moto_parity.check_version(".".join(map(str, low)))
    for untested in ("5.2.4", ".".join(map(str, high)), "6.0.0"):
        with pytest.raises(RuntimeError, match=rf"moto {re.escape(untested)}: .* tested with moto"):
            moto_parity.check_version(untested)


def test_every_shim_and_cited_test_is_in_the_divergence_list():
    """docs/aws-vs-moto.md names every shim apply() installs, and every test it cites exists."""
    import ast
    import inspect
    from pathlib import Path

    from jobscheduler.local import moto_parity, moto_speedups

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "aws-vs-moto.md").read_text()
    shims = {node.value.func.id for apply in (moto_parity.apply, moto_speedups.apply)
             for node in ast.parse(inspect.getsource(apply)).body[0].body  # type: ignore[attr-defined]
             if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
             and isinstance(node.value.func, ast.Name) and node.value.func.id.startswith("_")}
    assert len(shims) >= 10
    assert {shim for shim in shims if f"`{shim}`" not in doc} == set()
    assert "`sign_workflow_calls`" in doc
    defined = {name for path in (root / "tests").rglob("*.py")
               for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    cited = set(re.findall(r"::(test_\w+)|`(test_\w+)`|, (test_\w+)", doc))
    assert {name for group in cited for name in group if name} - defined == set()


def test_an_ended_executions_history_is_kept_packed_and_read_back_as_moto_gave_it(aws):
    """Speed shim `_ended_histories_packed`: once an execution ends its history is held compressed, not as
    objects, and GetExecutionHistory answers what moto's own copy answered, event for event."""
    import json
    import time

    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "First", "States": {
        "First": {"Type": "Pass", "Result": {"payload": "x" * 5000}, "ResultPath": "$.first", "Next": "Nap"},
        "Nap": {"Type": "Wait", "Seconds": 1, "Next": "Last"},
        "Last": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(name="packed", definition=json.dumps(definition),
                                       roleArn="arn:aws:iam::123456789012:role/packed")["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"jobId": "j"}))["executionArn"]

    def events() -> list[dict]:
        return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]

    running = events()
    while not any(e["type"] == "WaitStateEntered" for e in running):
        time.sleep(0.02)
        running = events()
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.05)
    ended = events()

    backend = stepfunctions_parser_backends["123456789012"]["us-east-1"]
    execution = next(e for e in backend._get_executions() if e.execution_arn == arn)
    manager = execution.exec_worker.env.event_manager
    assert manager._history_event_list == [] and len(manager._packed) < 2000
    assert ended[:len(running)] == running  # read while running: moto's own deepcopy of its list
    assert [e["id"] for e in ended] == list(range(1, len(ended) + 1))
    assert [e["type"] for e in ended[-3:]] == ["PassStateEntered", "PassStateExited", "ExecutionSucceeded"]
    assert json.loads(ended[-1]["executionSucceededEventDetails"]["output"])["first"]["payload"] == "x" * 5000
    assert events() == ended  # each read unpacks a fresh copy


def test_stream_records_are_kept_packed_and_each_read_is_a_fresh_copy(aws):
    """Speed shim `_stream_records_packed`: a stream record is held compressed; GetRecords answers its
    images and names as written, and what one reader does to its answer never reaches the next."""
    from moto.dynamodb.models import dynamodb_backends

    ddb = boto3.client("dynamodb")
    ddb.update_table(TableName=aws.table, StreamSpecification={"StreamEnabled": True,
                                                                "StreamViewType": "NEW_AND_OLD_IMAGES"})
    key = {"jobId": {"S": "streamed"}}
    ddb.put_item(TableName=aws.table, Item={**key, "status": {"S": "Scheduled"}, "note": {"S": "n" * 3000}})
    ddb.update_item(TableName=aws.table, Key=key, UpdateExpression="SET #s = :r",
                    ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":r": {"S": "Requested"}})
    ddb.delete_item(TableName=aws.table, Key=key)
    shard = dynamodb_backends["123456789012"]["us-east-1"].get_table(aws.table).stream_shard

    def records() -> list[dict]:  # what GetRecords reads (the in-process mock does not route DynamoDB Streams)
        return shard.get(shard.starting_sequence_number, 1000)

    first = records()
    assert [r["eventName"] for r in first] == ["INSERT", "MODIFY", "REMOVE"]
    inserted, modified, removed = (r["dynamodb"] for r in first)
    assert inserted["NewImage"]["note"] == {"S": "n" * 3000} and "OldImage" not in inserted
    assert (modified["OldImage"]["status"], modified["NewImage"]["status"]) == ({"S": "Scheduled"}, {"S": "Requested"})
    assert removed["OldImage"]["status"] == {"S": "Requested"} and "NewImage" not in removed
    assert inserted["Keys"] == key and inserted["SizeBytes"] > 3000

    held = shard.items
    assert all("_record" not in r.__dict__ and len(r._packed) < 1500 for r in held)
    held[0].to_json()["dynamodb"]["NewImage"]["status"] = {"S": "changed by a reader"}
    assert records() == first


def test_instance_type_offerings_are_read_per_region_and_equal_what_moto_reads_at_import(aws):
    """Speed shim `_offerings_read_per_region`: a region's offerings are read the first time a call asks for
    them; for every location type and region they equal what moto's own module reads at import, and
    DescribeInstanceTypeOfferings answers from them."""
    import importlib.util

    from moto.ec2.models import instance_types

    spec = importlib.util.find_spec(instance_types.__name__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)  # moto's module run afresh: it reads every file at import
    spec.loader.exec_module(fresh)
    held = instance_types.INSTANCE_TYPE_OFFERINGS
    assert "af-south-1" not in held["region"].read  # nothing asked for it yet
    assert held.keys() == fresh.INSTANCE_TYPE_OFFERINGS.keys()
    for location_type, regions in fresh.INSTANCE_TYPE_OFFERINGS.items():
        assert sorted(held[location_type]) == sorted(regions) and len(regions) >= 30
        for region, offerings in regions.items():
            assert held[location_type][region] == offerings, (location_type, region)
            assert held[location_type][region] is held[location_type].get(region)  # read once, then kept
    assert held["region"].get("nowhere-1", []) == [] and "nowhere-1" not in held["region"]

    answer = boto3.client("ec2", region_name="eu-west-1").describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["m5.large"]}])
    zones = {o["Location"] for o in fresh.INSTANCE_TYPE_OFFERINGS["availability-zone"]["eu-west-1"]
             if o["InstanceType"] == "m5.large"}
    assert {o["Location"] for o in answer["InstanceTypeOfferings"]} == zones != set()


def test_service_models_are_parsed_once_for_moto_its_regions_and_the_workflows_clients(aws):
    """Speed shim `_service_models_loaded_once`: moto's models, the sessions its backends ask for regions and
    boto3's session read through one loader; each answers what its own loader gave (moto's error shapes,
    botocore's paginator keys, every region and operation)."""
    import boto3.session
    from moto.core import utils as moto_utils
    from moto.core.base_backend import AccountSpecificBackend
    from moto.core.loaders import Loader

    shared = moto_utils.create_loader()
    assert isinstance(shared, Loader) and moto_utils.create_loader() is shared
    regions_session = AccountSpecificBackend.get_session()
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_aws_sdk

    workflow_client = state_task_service_aws_sdk.boto_client_for("us-east-1", "ec2")  # what a task calls with
    assert regions_session._session.get_component("data_loader") is shared
    assert workflow_client._loader is shared
    assert shared.load_service_model("ec2", "service-2") is shared.load_service_model("ec2", "service-2", None)

    own = boto3.session.Session()  # its own loader: what every one of them read before
    assert own._session.get_component("data_loader") is not shared
    assert regions_session.get_available_regions("ec2") == own.get_available_regions("ec2")
    assert regions_session.get_available_partitions() == own.get_available_partitions()
    theirs = own.client("ec2", region_name="us-east-1").meta.service_model
    assert workflow_client.meta.service_model.operation_names == theirs.operation_names
    paginator = "GetNetworkInsightsAccessScopeAnalysisFindings"  # botocore's extras: kept
    assert (workflow_client.get_paginator("get_network_insights_access_scope_analysis_findings")._pagination_cfg
            == own.client("ec2", region_name="us-east-1").get_paginator(
                "get_network_insights_access_scope_analysis_findings")._pagination_cfg)
    assert "non_aggregate_keys" in moto_utils.get_pagination_model("ec2")[paginator]
    assert "AuthFailure" in moto_utils.get_service_model("ec2").shape_names  # moto's extras: kept


def _random_json(rng, depth=0):
    """A random JSON value, with a few values JSON lacks among the leaves."""
    import datetime
    import decimal

    if depth > 3 or rng.random() < 0.3:
        return rng.choice(["text", "", 0, -7, 2.5, True, False, None, "ü" * 3, datetime.datetime(2026, 12, 1),
                           decimal.Decimal("1.5"), (1, [2]), b"bytes"])
    if rng.random() < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{n}": _random_json(rng, depth + 1) for n in range(rng.randint(0, 4))}


def _containers(value):
    """Every dict and list inside ``value`` (itself included), by identity."""
    found = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict | list):
            found.append(item)
            pending.extend(item.values() if isinstance(item, dict) else item)
    return found


def test_json_values_are_copied_as_deepcopy_copies_them(aws):
    """Speed shim `_json_values_copied_fast`: for random JSON trees (with a datetime, a decimal, a tuple and bytes
    among the leaves) the copy equals copy.deepcopy's and shares no dict or list with the original; the
    interpreter's modules that copy JSON values use it, the others keep copy.deepcopy."""
    import copy
    import random

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.common.string import string_expression
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service
    from moto.stepfunctions.parser.asl.eval import environment, states

    from jobscheduler.local.moto_speedups import json_copy

    rng = random.Random(23)
    for _ in range(500):
        value = _random_json(rng)
        copied = json_copy(value)
        assert copied == copy.deepcopy(value)
        assert {id(c) for c in _containers(copied)}.isdisjoint(id(c) for c in _containers(value))
    nested = {"a": [{"b": [1, {"c": "d"}]}]}
    copied = json_copy(nested)
    copied["a"][0]["b"][1]["c"] = "changed"
    assert nested == {"a": [{"b": [1, {"c": "d"}]}]}
    for module in (states, string_expression, result_path, state_task_service):
        assert module.copy.deepcopy is json_copy, module.__name__
    for module in (execute_state, environment):
        assert module.copy is copy, module.__name__


def test_query_parameters_are_parsed_as_moto_parses_them(aws):
    """Speed shim `_query_parameters_indexed`: EC2 requests as botocore sends them (a launch template version
    with block devices, interfaces and tags; an instant fleet with overrides; filters), and random parameter names
    that share prefixes, parse to what moto's own scanning parser gives."""
    import random

    import botocore.serialize
    from moto.core.parse import EC2QueryParser
    from werkzeug.datastructures import CombinedMultiDict, MultiDict

    model = boto3.client("ec2").meta.service_model
    shimmed = EC2QueryParser._do_parse
    moto = shimmed.__wrapped__
    assert shimmed is not moto
    requests = {
        "CreateLaunchTemplateVersion": {
            "LaunchTemplateId": "lt-1", "SourceVersion": "1", "VersionDescription": "job", "ClientToken": "t",
            "LaunchTemplateData": {
                "UserData": "H4sIAAAAAAAAA+3OMQ0AAAgDsHn3/0oQ+bAVz0mSJEmSJEmSJEm+PwAAAP//AwDSu5Yj" * 40,
                "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30, "Encrypted": True}}],
                "NetworkInterfaces": [{"DeviceIndex": 0, "Groups": ["sg-1", "sg-2"], "SubnetId": "subnet-1"}],
                "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}],
                "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.5"}}}},
        "CreateFleet": {
            "Type": "instant", "ClientToken": "c",
            "TargetCapacitySpecification": {"TotalTargetCapacity": 1, "DefaultTargetCapacityType": "spot"},
            "SpotOptions": {"AllocationStrategy": "price-capacity-optimized"},
            "LaunchTemplateConfigs": [{"LaunchTemplateSpecification": {"LaunchTemplateId": "lt-1", "Version": "2"},
                                       "Overrides": [{"InstanceType": t, "SubnetId": s, "MaxPrice": "0.1"}
                                                     for t in ("m5.large", "c5.large", "t3.micro")
                                                     for s in ("subnet-1", "subnet-2")]}],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "jobscheduler:job", "Value": "j"}]}]},
        "DescribeInstances": {"Filters": [{"Name": "tag:jobscheduler:job", "Values": ["a", "b"]},
                                          {"Name": "instance-state-name", "Values": ["running"]}],
                              "MaxResults": 50},
    }
    serializer = botocore.serialize.create_serializer("ec2")
    rng = random.Random(5)
    for action, params in requests.items():
        operation = model.operation_model(action)
        body = serializer.serialize_to_request(params, operation)["body"]
        forms = [MultiDict(list(body.items()))]
        # The same names with others that share their prefixes and are no member at all.
        noisy = MultiDict(list(body.items()) + [(f"{name}{rng.choice(['x', '.9', 'Extra'])}", "n")
                                                for name in rng.sample(sorted(body), min(8, len(body)))])
        for values in (*forms, noisy, CombinedMultiDict([MultiDict(), noisy])):
            request = {"method": "POST", "values": values, "headers": {}, "body": "", "url_path": "/",
                       "url_params": {}}
            assert EC2QueryParser(operation).parse(request) == moto(EC2QueryParser(operation), request,
                                                                     operation.input_shape), action
    fleet = EC2QueryParser(model.operation_model("CreateFleet")).parse(
        {"method": "POST", "values": MultiDict(list(serializer.serialize_to_request(
            requests["CreateFleet"], model.operation_model("CreateFleet"))["body"].items())),
         "headers": {}, "body": "", "url_path": "/", "url_params": {}})
    assert len(fleet["LaunchTemplateConfigs"][0]["Overrides"]) == 6  # the comparison is not between empty answers
