"""The emulator behaves like AWS where the workflow relies on it (infra/moto_parity.py)."""

from __future__ import annotations

import threading

import boto3
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
