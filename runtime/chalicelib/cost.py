"""What a job cost: each attempt's price at launch, and the job's estimate once it ends.

- When an attempt appears, :func:`record_prices` writes its Availability Zone,
  the Spot price in effect at launch (DescribeSpotPriceHistory for its
  instance type and AZ) and the On-Demand list price, once (a conditional write).
- When the job ends, :func:`record_cost` writes ``cost``: every attempt's price
  times its billed runtime (per second, 60 s minimum, as EC2 bills Linux), and
  what the same runtime would have cost On-Demand.

On-Demand prices come from a small table bundled here, not from the Pricing
API: us-east-1 Linux list prices for the default instance types, the
examples' types and the common GPU types (g4dn, g5, g6 up to 16xlarge).
Outside that table the saving is unknown (``null``), never guessed. Storage,
data transfer and the other services are not included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from . import aws, config, jobs, statuses, store, times

if TYPE_CHECKING:  # the stubs are a development dependency; Lambda has none
    from mypy_boto3_ec2.literals import InstanceTypeType

log = logging.getLogger(__name__)

ON_DEMAND_SOURCE = "bundled us-east-1 Linux On-Demand list prices (2025)"
# USD per hour, Linux, shared tenancy. Check https://aws.amazon.com/ec2/pricing/on-demand/
# before relying on them; AWS rarely changes a type's price once it is published.
ON_DEMAND_USD_PER_HOUR: dict[str, dict[str, str]] = {
    "us-east-1": {
        "m7i.large": "0.1008", "m6i.large": "0.096", "m6a.large": "0.0864", "m5.large": "0.096",
        "m5a.large": "0.086", "c7i.large": "0.08925", "c6i.large": "0.085", "c5.large": "0.085",
        "t3.micro": "0.0104", "t3a.micro": "0.0094", "t2.micro": "0.0116", "t3.small": "0.0208",
        "t3.medium": "0.0416", "t3.large": "0.0832",
        # The common NVIDIA GPU families (a job with resources.gpus gets the closest fits first).
        "g4dn.xlarge": "0.526", "g4dn.2xlarge": "0.752", "g4dn.4xlarge": "1.204", "g4dn.8xlarge": "2.176",
        "g4dn.12xlarge": "3.912", "g4dn.16xlarge": "4.352",
        "g5.xlarge": "1.006", "g5.2xlarge": "1.212", "g5.4xlarge": "1.624", "g5.8xlarge": "2.448",
        "g5.12xlarge": "5.672", "g5.16xlarge": "4.096",
        "g6.xlarge": "0.8048", "g6.2xlarge": "0.9776", "g6.4xlarge": "1.3232", "g6.8xlarge": "2.0144",
        "g6.12xlarge": "4.6016", "g6.16xlarge": "3.3968",
    },
}
MIN_BILLED_SECONDS = 60
PRODUCTS = ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"]

_serializer = TypeSerializer()


def on_demand_price(instance_type: str, region: str | None = None) -> Decimal | None:
    """The bundled On-Demand list price of the type in the region, or ``None`` if not in the table."""
    price = ON_DEMAND_USD_PER_HOUR.get(region or config.region(), {}).get(instance_type)
    return Decimal(price) if price else None


def spot_price(instance_type: str, zone: str, at: str) -> Decimal | None:
    """The Spot price in effect at ``at`` for the type in the AZ, or ``None`` if EC2 has none."""
    moment = times.parse(at)
    # With a start and end time, EC2 also returns the last change before the start:
    # the price that was in effect at launch.
    pages = aws.ec2().get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=[cast("InstanceTypeType", instance_type)], ProductDescriptions=PRODUCTS,
        StartTime=moment, EndTime=moment, Filters=[{"Name": "availability-zone", "Values": [zone]}])
    prices = [p for page in pages for p in page["SpotPriceHistory"] if p.get("AvailabilityZone") == zone]
    if not prices:
        return None
    latest = max(prices, key=lambda p: str(p.get("Timestamp", "")))
    return Decimal(str(latest["SpotPrice"]))


def zone_of(instance_id: str) -> str | None:
    """The instance's Availability Zone (EC2 lists terminated instances for about an hour)."""
    try:
        reservations = aws.ec2().describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidInstanceID.NotFound":
            return None
        raise
    found = [i for r in reservations for i in r["Instances"]]
    return str(found[0]["Placement"]["AvailabilityZone"]) if found else None


def prices_for(attempt: jobs.Attempt) -> dict[str, Any]:
    """``availabilityZone``, ``spotPrice`` (Spot attempts) and ``onDemandPrice`` of one attempt.

    Prices are decimal strings in USD per hour, as EC2 quotes them: the attempts
    list is read and written back whole elsewhere (a Spot interruption, the
    sweeper), and a string survives that round trip exactly where a number
    read back as a float would not be writable.
    """
    instance_type = attempt.get("instanceType", "")
    zone = zone_of(attempt["instanceId"])
    spot = None
    if attempt.get("lifecycle") == "spot" and zone and attempt.get("launchedAt"):
        spot = spot_price(instance_type, zone, attempt["launchedAt"])
    on_demand = on_demand_price(instance_type)
    return {"availabilityZone": zone, "spotPrice": None if spot is None else str(spot),
            "onDemandPrice": None if on_demand is None else str(on_demand)}


def record_prices(job: Mapping[str, Any]) -> list[str]:
    """Price every attempt of the job that has no prices yet; the instance ids priced now."""
    priced = []
    for index, attempt in enumerate(job.get("attempts", [])):
        if "availabilityZone" in attempt or not attempt.get("instanceId"):
            continue
        values = prices_for(attempt)
        if _write_prices(job["jobId"], index, attempt["instanceId"], values):
            priced.append(attempt["instanceId"])
    return priced


def _write_prices(job_id: str, index: int, instance_id: str, values: dict[str, Any]) -> bool:
    names = {"#a": "attempts", **{f"#f{i}": k for i, k in enumerate(values)}}
    sets = ", ".join(f"#a[{index}].#f{i} = :f{i}" for i in range(len(values)))
    attr_values = {f":f{i}": _serializer.serialize(v) for i, v in enumerate(values.values())}
    attr_values[":iid"] = {"S": instance_id}
    try:
        aws.dynamodb().update_item(
            TableName=config.jobs_table(), Key={"jobId": {"S": job_id}}, UpdateExpression=f"SET {sets}",
            # Once per attempt, and only on the attempt it was computed for.
            ConditionExpression=f"#a[{index}].instanceId = :iid AND attribute_not_exists(#a[{index}].#f0)",
            ExpressionAttributeNames=names, ExpressionAttributeValues=attr_values)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def estimate(attempts: list[jobs.Attempt]) -> dict[str, Any]:
    """The job's cost from its attempts' prices and runtimes (USD; ``None`` where a price is unknown)."""
    spent: Decimal | None = Decimal(0)
    on_demand: Decimal | None = Decimal(0)
    billed = 0
    for attempt in attempts:
        if not attempt.get("launchedAt") or not attempt.get("endedAt"):
            continue
        runtime = times.parse(attempt["endedAt"]) - times.parse(attempt["launchedAt"])
        seconds = max(MIN_BILLED_SECONDS, round(runtime.total_seconds()))
        billed += seconds
        hours = Decimal(seconds) / Decimal(3600)
        list_price = _decimal(attempt.get("onDemandPrice"))
        paid = _decimal(attempt.get("spotPrice")) if attempt.get("lifecycle") == "spot" else list_price
        spent = spent + paid * hours if spent is not None and paid is not None else None
        on_demand = on_demand + list_price * hours if on_demand is not None and list_price is not None else None
    saving = on_demand - spent if spent is not None and on_demand is not None else None
    percent = round(float(saving / on_demand * 100), 1) if saving is not None and on_demand else None
    return {"currency": "USD", "estimated": _money(spent), "onDemand": _money(on_demand), "saving": _money(saving),
            "savingPercent": percent, "billedSeconds": billed, "onDemandPrices": ON_DEMAND_SOURCE}


def record_cost(job_id: str) -> dict[str, Any] | None:
    """Write the ended job's ``cost`` once; returns it (``None`` if not ended or already written)."""
    job = store.get(job_id)
    if job is None or job["status"] not in statuses.TERMINAL or "cost" in job:
        return None
    if record_prices(job):
        job = store.get(job_id) or job
    cost = estimate(job.get("attempts", []))
    stored = {k: Decimal(str(v)) if isinstance(v, float) else v for k, v in cost.items()}
    written = store.update(job_id, {"cost": stored}, allowed_from=tuple(sorted(statuses.TERMINAL)),
                           condition="attribute_not_exists(cost)")
    return cost if written else None


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _money(value: Decimal | None) -> float | None:
    # To a millionth of a cent: a short run of a cheap type is worth little, but not nothing.
    return None if value is None else float(round(value, 8))
