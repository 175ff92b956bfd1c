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

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from . import aws, config, pages

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A job has one stream per attempt (at most 10): bound the listing and the reads all the same.
MAX_STREAMS = 50
MAX_READS = 25
NOT_THIS_JOBS = "is not a token this API handed out for this job"


def page(job_id: str, limit: int = DEFAULT_LIMIT, next_token: str | None = None) -> dict[str, Any]:
    """One page of the job's output: ``{"jobId", "events": [...], "nextToken"}``.

    Each event is ``{"timestamp": epoch ms, "message", "instanceId"}``.
    """
    stream, cw_token = decode_token(next_token) if next_token else (None, None)
    group = config.job_log_group()
    streams = stream_names(group, job_id) if group else []
    if stream is not None and stream not in streams:
        raise pages.BadToken(NOT_THIS_JOBS)
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
    found: list[tuple[int, str]] = []  # (creation time, name)
    answers = aws.logs().get_paginator("describe_log_streams").paginate(
        logGroupName=group, logStreamNamePrefix=f"{job_id}/", PaginationConfig={"MaxItems": MAX_STREAMS})
    try:
        for answer in answers:
            found += [(s.get("creationTime", 0), s.get("logStreamName", "")) for s in answer.get("logStreams", [])]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return []  # no group yet: nothing was shipped
        raise
    return [name for _, name in sorted(found)]


def _read(group: str, stream: str, limit: int, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
    # GetLogEvents has no paginator, and its paging is not a paginator's: at the end of a
    # stream it hands back the token it was given, which is how page() knows to move on.
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
    """The page token for a position: the stream being read and CloudWatch's own token in it."""
    return pages.encode({"s": stream, "t": cw_token})


def decode_token(token: str) -> tuple[str | None, str | None]:
    """The position inside a token from :func:`encode_token`; :class:`pages.BadToken` for anything else."""
    position = pages.decode(token, NOT_THIS_JOBS)
    stream, cw_token = position.get("s"), position.get("t")
    if set(position) != {"s", "t"} or not all(v is None or isinstance(v, str) for v in (stream, cw_token)):
        raise pages.BadToken(NOT_THIS_JOBS)
    return stream, cw_token


def parse_query(params: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` and ``nextToken`` of ``GET /jobs/{jobId}/logs``, validated (a ``JobError`` names the culprit)."""
    pages.refuse_unknown(params, ("limit", "nextToken"))
    return pages.limit(params, DEFAULT_LIMIT, MAX_LIMIT), pages.token(params)
