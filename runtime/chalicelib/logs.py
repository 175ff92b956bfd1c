"""The container's output: the job's CloudWatch Logs streams, read a page at a time.

The bootstrap ships each attempt's output to the job log group under the
stream ``<jobId>/<instanceId>``, so a job has one stream per instance it ran
on. A page reads the streams in the order they were created, and its
``nextToken`` says where the next page starts: a position, always returned,
so a client can poll a running job for new lines (``logs --follow``). A page
with no events means there is nothing more *yet*.

FilterLogEvents with a stream prefix would read all streams at once, but
moto ignores that prefix; DescribeLogStreams with the prefix and
GetLogEvents per stream behave the same in both.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from botocore.exceptions import ClientError

from . import aws, config
from .jobs import JobError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A job has one stream per attempt (at most 10): bound the listing and the reads all the same.
MAX_STREAMS = 50
MAX_READS = 25


def page(job_id: str, limit: int = DEFAULT_LIMIT, next_token: str | None = None) -> dict[str, Any]:
    """One page of the job's output: ``{"jobId", "events": [...], "nextToken"}``.

    Each event is ``{"timestamp": epoch ms, "message", "instanceId"}``.
    """
    stream, cw_token = decode_token(next_token) if next_token else (None, None)
    group = config.job_log_group()
    streams = stream_names(group, job_id) if group else []
    if stream is not None and stream not in streams:
        raise JobError("nextToken", "is not a token this API handed out for this job")
    events: list[dict[str, Any]] = []
    index = streams.index(stream) if stream is not None else 0
    for _ in range(MAX_READS):
        if index >= len(streams) or len(events) >= limit:
            break
        stream = streams[index]
        read, token = _read(group or "", stream, limit - len(events), cw_token)
        events += read
        # GetLogEvents hands back the token it was given at the end of a stream;
        # only then is it safe to go on to the next one.
        at_end = cw_token is not None and token == cw_token
        cw_token = token
        if at_end and index + 1 < len(streams):
            index, stream, cw_token = index + 1, streams[index + 1], None
        elif at_end:
            break
    return {"jobId": job_id, "events": events, "nextToken": encode_token(stream, cw_token)}


def stream_names(group: str, job_id: str) -> list[str]:
    """The job's streams in the log group, oldest first."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": f"{job_id}/"}
    try:
        while len(found) < MAX_STREAMS:
            answer = aws.logs().describe_log_streams(**kwargs)
            found += answer.get("logStreams", [])
            if not answer.get("nextToken"):
                break
            kwargs["nextToken"] = answer["nextToken"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return []  # no group yet: nothing was shipped
        raise
    found.sort(key=lambda s: (s.get("creationTime", 0), s["logStreamName"]))
    return [s["logStreamName"] for s in found]


def _read(group: str, stream: str, limit: int, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True,
                              "limit": limit}
    if token:
        kwargs["nextToken"] = token
    answer = aws.logs().get_log_events(**kwargs)
    instance_id = stream.partition("/")[2]
    events = [{"timestamp": e["timestamp"], "message": e["message"], "instanceId": instance_id}
              for e in answer.get("events", [])]
    return events, answer.get("nextForwardToken")


def encode_token(stream: str | None, cw_token: str | None) -> str:
    """An opaque position: the stream being read and CloudWatch's own token in it."""
    raw = json.dumps({"s": stream, "t": cw_token}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[str | None, str | None]:
    """The position inside a token from :func:`encode_token`; a ``JobError`` for anything else."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        stream, cw_token = data["s"], data["t"]
        if set(data) != {"s", "t"} or not all(v is None or isinstance(v, str) for v in (stream, cw_token)):
            raise ValueError(token)
        return stream, cw_token
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise JobError("nextToken", "is not a token this API handed out for this job") from None


def parse_query(params: dict[str, str]) -> tuple[int, str | None]:
    """``limit`` and ``nextToken`` from the query string, validated."""
    unknown = sorted(set(params) - {"limit", "nextToken"})
    if unknown:
        raise JobError(unknown[0], "is not a query parameter (limit, nextToken)")
    limit = params.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        raise JobError("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(limit), params.get("nextToken") or None
