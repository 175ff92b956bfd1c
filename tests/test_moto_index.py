"""A Query on a global secondary index, with the partition shim (jobscheduler/local/moto_index.py).

Each test holds DynamoDB's documented Query semantics
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.html and
.../GSI.html): key conditions on the sort key, order by the sort key,
``Limit`` applied before the filter, ``LastEvaluatedKey`` made of the
table's key and the index's key, resuming from it, an item indexed under
its current key only, an item without the index's key attributes not
indexed. The shim's answers are also compared with moto's plain path over
randomised tables and writes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobscheduler.local import moto_index

TABLE = "Items"
STATUSES = ("Scheduled", "Running", "TerminatedOK", "TerminatedNOK")


@pytest.fixture
def ddb(credentials: None) -> Iterator[Any]:
    """moto with a table keyed by id and a GSI byStatus (status, sortKey), as the job table has."""
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("id", "status", "sortKey")],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {"IndexName": "byStatus", "Projection": {"ProjectionType": "ALL"},
                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                               {"AttributeName": "sortKey", "KeyType": "RANGE"}]},
                {"IndexName": "byStatusKeys", "Projection": {"ProjectionType": "KEYS_ONLY"},
                 "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}]}])
        yield client


def put(ddb: Any, item_id: str, status: str | None, sort_key: str | None, **extra: str) -> None:
    item = {"id": {"S": item_id}, **{k: {"S": v} for k, v in extra.items()}}
    if status is not None:
        item["status"] = {"S": status}
    if sort_key is not None:
        item["sortKey"] = {"S": sort_key}
    ddb.put_item(TableName=TABLE, Item=item)


def query(ddb: Any, status: str, condition: str = "", values: dict[str, str] | None = None,
          **kwargs: Any) -> dict[str, Any]:
    expression = "#s = :s" + (f" AND {condition}" if condition else "")
    names = {"#s": "status", **({"#k": "sortKey"} if "#k" in condition else {}), **kwargs.pop("names", {})}
    found: dict[str, Any] = ddb.query(
        TableName=TABLE, IndexName=kwargs.pop("index", "byStatus"), KeyConditionExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={":s": {"S": status}, **{k: {"S": v} for k, v in (values or {}).items()}},
        **kwargs)
    found.pop("ResponseMetadata", None)
    return found


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["id"]["S"] for item in answer["Items"]]


def both(ddb: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The shim's answer, checked equal to moto's plain path's."""
    before = moto_index.answered["partition"]
    shim = query(ddb, *args, **dict(kwargs))
    assert moto_index.answered["partition"] == before + 1, "the Query took moto's plain path"
    with moto_index.plain_queries():
        plain = query(ddb, *args, **dict(kwargs))
    assert shim == plain
    return shim


@pytest.fixture
def sample(ddb: Any) -> Any:
    """Ten Running items a0..a9 (sortKey k0..k9) and a few others, written in shuffled order."""
    rows = [(f"a{i}", "Running", f"k{i}") for i in range(10)] + [(f"b{i}", "Scheduled", f"k{i}") for i in range(3)]
    random.Random(3).shuffle(rows)
    for row in rows:
        put(ddb, *row, extra="x")
    return ddb


@pytest.mark.parametrize(("condition", "values", "expected"), [
    ("", {}, [f"a{i}" for i in range(10)]),
    ("#k = :a", {":a": "k4"}, ["a4"]),
    ("#k < :a", {":a": "k3"}, ["a0", "a1", "a2"]),
    ("#k <= :a", {":a": "k3"}, ["a0", "a1", "a2", "a3"]),
    ("#k > :a", {":a": "k7"}, ["a8", "a9"]),
    ("#k >= :a", {":a": "k7"}, ["a7", "a8", "a9"]),
    ("#k BETWEEN :a AND :b", {":a": "k2", ":b": "k5"}, ["a2", "a3", "a4", "a5"]),
    ("begins_with(#k, :a)", {":a": "k"}, [f"a{i}" for i in range(10)]),
    ("begins_with(#k, :a)", {":a": "k5"}, ["a5"]),
    ("begins_with(#k, :a)", {":a": "j"}, []),
    ("#k > :a", {":a": "k9"}, []),
])
def test_key_conditions_select_by_the_sort_key_in_one_partition(sample, condition, values, expected):
    """Each sort key comparison selects exactly the matching items of the asked partition, in ascending order."""
    assert ids(both(sample, "Running", condition, values)) == expected


def test_scan_index_forward_false_returns_descending_sort_key(sample):
    """ScanIndexForward=false: the same items, descending by the index's sort key."""
    assert ids(both(sample, "Running", ScanIndexForward=False)) == [f"a{i}" for i in range(9, -1, -1)]
    assert ids(both(sample, "Running", "#k < :a", {":a": "k3"}, ScanIndexForward=False)) == ["a2", "a1", "a0"]


def test_limit_applies_before_the_filter(sample):
    """Limit caps the items read; the filter then drops some of those: fewer returned, ScannedCount = Limit."""
    answer = both(sample, "Running", Limit=4, FilterExpression="#i IN (:x, :y)", names={"#i": "id"},
                  values={":x": "a1", ":y": "a7"})
    assert (ids(answer), answer["Count"], answer["ScannedCount"]) == (["a1"], 1, 4)
    assert "LastEvaluatedKey" in answer


def test_last_evaluated_key_holds_table_and_index_keys_and_resumes(sample):
    """LastEvaluatedKey is the last item's table key plus its index key; passing it back continues after it."""
    first = both(sample, "Running", Limit=3)
    assert first["LastEvaluatedKey"] == {"id": {"S": "a2"}, "status": {"S": "Running"}, "sortKey": {"S": "k2"}}
    second = both(sample, "Running", Limit=3, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert ids(second) == ["a3", "a4", "a5"]
    back = both(sample, "Running", Limit=3, ScanIndexForward=False, ExclusiveStartKey=second["LastEvaluatedKey"])
    assert ids(back) == ["a4", "a3", "a2"]


def test_paging_visits_every_item_once_in_order(sample):
    """Page by page with Limit=4, each item of the partition comes exactly once, in order."""
    seen, start = [], None
    for _ in range(10):
        page = both(sample, "Running", Limit=4, **({"ExclusiveStartKey": start} if start else {}))
        seen += ids(page)
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == [f"a{i}" for i in range(10)]


def test_items_move_between_partitions_when_their_key_changes(sample):
    """UpdateItem, a replacing PutItem and DeleteItem move an item out of its old partition (into its new one)."""
    sample.update_item(TableName=TABLE, Key={"id": {"S": "a3"}}, UpdateExpression="SET #s = :n",
                       ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":n": {"S": "Scheduled"}})
    put(sample, "a5", "TerminatedOK", "k5")
    sample.delete_item(TableName=TABLE, Key={"id": {"S": "a7"}})
    sample.update_item(TableName=TABLE, Key={"id": {"S": "a0"}}, UpdateExpression="SET sortKey = :k",
                       ExpressionAttributeValues={":k": {"S": "k99"}})
    assert ids(both(sample, "Running")) == ["a1", "a2", "a4", "a6", "a8", "a9", "a0"]
    assert ids(both(sample, "Scheduled")) == ["b0", "b1", "b2", "a3"]
    assert ids(both(sample, "TerminatedOK")) == ["a5"]


def test_items_missing_an_index_key_are_not_indexed(ddb):
    """An item without the partition key, or without the sort key of the index, is not in the index."""
    put(ddb, "whole", "Running", "k1")
    put(ddb, "no-sort-key", "Running", None)
    put(ddb, "no-status", None, "k2")
    assert ids(both(ddb, "Running")) == ["whole"]
    # Removing the sort key takes an item out of the index; setting it puts the item back.
    ddb.update_item(TableName=TABLE, Key={"id": {"S": "whole"}}, UpdateExpression="REMOVE sortKey")
    assert ids(both(ddb, "Running")) == []
    ddb.update_item(TableName=TABLE, Key={"id": {"S": "no-sort-key"}}, UpdateExpression="SET sortKey = :k",
                    ExpressionAttributeValues={":k": {"S": "k0"}})
    assert ids(both(ddb, "Running")) == ["no-sort-key"]


def test_an_index_without_sort_key_and_keys_only_projection(sample):
    """byStatusKeys has no sort key: its items come in table key order, projected to the keys."""
    answer = both(sample, "Scheduled", index="byStatusKeys")
    assert answer["Items"] == [{"id": {"S": f"b{i}"}, "status": {"S": "Scheduled"}} for i in range(3)]


def test_partiql_and_batch_writes_are_seen(sample):
    """Writes outside Put/Update/Delete (PartiQL, BatchWriteItem) reach the index too."""
    sample.execute_statement(Statement=f"UPDATE \"{TABLE}\" SET status = 'Scheduled' WHERE id = 'a9'")
    sample.batch_write_item(RequestItems={TABLE: [
        {"PutRequest": {"Item": {"id": {"S": "c1"}, "status": {"S": "Running"}, "sortKey": {"S": "k45"}}}},
        {"DeleteRequest": {"Key": {"id": {"S": "a1"}}}}]})
    assert ids(both(sample, "Running")) == ["a0", "a2", "a3", "a4", "c1", "a5", "a6", "a7", "a8"]
    assert ids(both(sample, "Scheduled")) == ["b0", "b1", "b2", "a9"]


def test_randomised_tables_answer_as_moto_plain(ddb):
    """Random items and writes, random queries (conditions, order, limits, filters, paging): same answers."""
    rng = random.Random(17)
    keys = [f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}#{n}" for n in range(40)]
    for step in range(300):
        item_id = f"i{rng.randrange(120)}"
        action = rng.random()
        if action < 0.6:
            put(ddb, item_id, rng.choice((*STATUSES, None)), rng.choice((*keys, None)), extra=str(step))
        elif action < 0.85:
            ddb.update_item(TableName=TABLE, Key={"id": {"S": item_id}}, UpdateExpression="SET #s = :s",
                            ExpressionAttributeNames={"#s": "status"},
                            ExpressionAttributeValues={":s": {"S": rng.choice(STATUSES)}})
        else:
            ddb.delete_item(TableName=TABLE, Key={"id": {"S": item_id}})
        if step % 10:
            continue
        for _ in range(5):
            low, high = sorted(rng.sample(keys, 2))
            condition, values = rng.choice([
                ("", {}), ("#k = :a", {":a": low}), ("#k < :a", {":a": low}), ("#k <= :a", {":a": low}),
                ("#k > :a", {":a": low}), ("#k >= :a", {":a": low}), ("#k BETWEEN :a AND :b", {":a": low, ":b": high}),
                ("begins_with(#k, :a)", {":a": low[:rng.randint(1, 9)]})])
            kwargs: dict[str, Any] = {"ScanIndexForward": rng.random() < 0.5}
            if rng.random() < 0.7:
                kwargs["Limit"] = rng.randint(1, 8)
            if rng.random() < 0.3:
                kwargs.update(FilterExpression="attribute_exists(extra)")
            start, status = None, rng.choice(STATUSES)
            for _ in range(30):  # page to the end: every page must agree
                page = both(ddb, status, condition, values,
                            **kwargs, **({"ExclusiveStartKey": start} if start else {}))
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
