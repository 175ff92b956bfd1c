"""The user data each job's instance boots with, rendered from bootstrap.sh.

The template's header holds ``@@NAME@@`` placeholders, each filled with a
shell-quoted literal (or a list of them, inside a bash array). Substitution is
a single pass, so a value that itself contains ``@@NAME@@`` stays literal.
Secret *values* never pass through here: the instance fetches them itself,
with the JSON requests rendered here (the script builds no JSON).
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import math
import re
import shlex
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MAX_USER_DATA_BYTES = 16384  # EC2's limit, before base64

# Past the job's max runtime the instance powers itself off; the margin covers
# boot and image pull, which the service's own timeout does not count.
DEAD_MAN_MARGIN_MINUTES = 5

_TEMPLATE_PATH = Path(__file__).with_name("bootstrap.sh")
_TEMPLATE_NOTE = "# jobscheduler bootstrap; commented source: runtime/chalicelib/bootstrap.sh\n"
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A private ECR image: the instance logs in to its registry; the API checks its account and region.
ECR_IMAGE = re.compile(
    r"(?P<registry>(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)/"
)
# The script exports secrets by name: these would fail (read-only in bash) or
# overwrite the script's own variables.
_RESERVED_SECRET_NAMES = {"BASHOPTS", "BASHPID", "EUID", "PPID", "SHELLOPTS", "UID"}
_RESERVED_PREFIXES = ("JS_", "BASH_")


def render_user_data(
    job: Mapping[str, Any],
    *,
    api_url: str,
    secret: str,
    log_group: str | None,
    region: str,
) -> str:
    """Return the bash script an instance runs for ``job``.

    ``api_url`` is the service's base URL without a trailing slash; ``secret``
    is the job's callback secret (sent as a bearer token); ``log_group`` is the
    CloudWatch Logs group for the container's output, or None for docker's
    default logging. Raises ValueError if a value cannot be passed safely or
    the script exceeds MAX_USER_DATA_BYTES.
    """
    values = _header_values(job, api_url=api_url, secret=secret, log_group=log_group, region=region)
    script = _PLACEHOLDER.sub(lambda match: values[match.group(1)], _template())
    size = len(script.encode())
    if size > MAX_USER_DATA_BYTES:
        raise ValueError(
            f"user data is {size} bytes, more than EC2's {MAX_USER_DATA_BYTES}: "
            "shorten env, command or secrets"
        )
    return script


def encode_user_data(script: str) -> str:
    """Return ``script`` gzipped as base64 text, the form CreateFleet's user data takes.

    cloud-init runs gzipped user data as it runs plain; a third of the size
    keeps every state of the job's execution (which carries it) small.
    """
    return base64.b64encode(gzip.compress(script.encode(), mtime=0)).decode("ascii")


def decode_user_data(value: str) -> str:
    """The script in user data as EC2 returns it (base64; gzipped or not, as cloud-init reads it)."""
    raw = base64.b64decode(value)
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


@functools.cache
def _template() -> str:
    """bootstrap.sh without its comment lines (shellcheck directives stay),
    which would spend a quarter of the user-data budget. Safe because no line
    of the template's multi-line strings (its python3 programs) starts with
    '#'; rendered values, which may have such lines, come in later."""
    shebang, *lines = _TEMPLATE_PATH.read_text().splitlines(keepends=True)
    code = [line for line in lines if not _is_comment(line)]
    return shebang + _TEMPLATE_NOTE + "".join(code)


def _is_comment(line: str) -> bool:
    text = line.lstrip()
    return text.startswith("#") and not text.startswith("# shellcheck")


def _header_values(
    job: Mapping[str, Any], *, api_url: str, secret: str, log_group: str | None, region: str
) -> dict[str, str]:
    job_id = _text(job["jobId"], "jobId")
    image = _text(job["image"], "image")
    if image.startswith("-"):
        raise ValueError("image: must not start with '-' (docker would read it as an option)")
    if "\n" in secret or "\r" in secret:
        raise ValueError("secret: must be one line (it is sent as an HTTP header)")
    env = job.get("env") or {}
    secrets = job.get("secrets") or {}
    _check_secret_names(secrets)
    refs = [_text(ref, f"secrets.{name}") for name, ref in secrets.items()]
    job_url = f"{api_url}/jobs/{urllib.parse.quote(job_id, safe='')}"
    registry, registry_region = _ecr_registry(image)
    return {
        "JOB_ID": _quote(job_id, "jobId"),
        "IMAGE": _quote(image, "image"),
        "CALLBACK_URL": _quote(f"{job_url}/callback", "api_url"),
        "HEARTBEAT_URL": _quote(f"{job_url}/heartbeat", "api_url"),
        "CALLBACK_SECRET": _quote(secret, "secret"),
        "REGION": _quote(region, "region"),
        "LOG_GROUP": _quote(log_group or "", "log_group"),
        "ECR_REGISTRY": shlex.quote(registry),
        "ECR_REGION": shlex.quote(registry_region),
        "DEAD_MAN_MINUTES": str(_dead_man_minutes(job)),
        "KEEP_ON_FAILURE": str(_keep_on_failure(job)),
        "HEARTBEAT_INTERVAL": str(_heartbeat_interval(job)),
        "GPUS": str(_gpus(job)),
        "ENV_ARGS": _env_args(env, secrets),
        "COMMAND": _array(job.get("command") or [], "command"),
        "SECRET_NAMES": _array(secrets, "secrets"),
        "SECRET_SERVICES": _array([_secret_service(ref) for ref in refs], "secrets"),
        "SECRET_REGIONS": _array([_secret_region(ref, region) for ref in refs], "secrets"),
        "SECRET_REQUESTS": _array([_secret_request(ref) for ref in refs], "secrets"),
    }


def _env_args(env: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    """``-e NAME=value`` for plain variables, bare ``-e NAME`` for secrets:
    docker then copies a secret's value from its own environment."""
    args = []
    for name, value in env.items():
        _check_name(name, "env")
        pair = f"{name}={_text(value, 'env.' + name)}"
        args.append(f"-e {_quote(pair, 'env.' + name)}")
    for name in secrets:
        args.append(f"-e {name}")
    return _lines(args)


def _check_secret_names(secrets: Mapping[str, str]) -> None:
    for name in secrets:
        _check_name(name, "secrets")
        if name in _RESERVED_SECRET_NAMES or name.startswith(_RESERVED_PREFIXES):
            raise ValueError(f"secrets.{name}: this name is reserved by the instance bootstrap")


def _array(words: Iterable[Any], field: str) -> str:
    """The inside of a bash array: one quoted literal per line."""
    return _lines(_quote(_text(word, field), field) for word in words)


def _lines(items: Iterable[str]) -> str:
    body = "".join(f"\n  {item}" for item in items)
    return f"{body}\n" if body else ""


def _quote(value: str, field: str) -> str:
    # bash strings cannot hold NUL, and docker's argv cannot either.
    if "\0" in value:
        raise ValueError(f"{field}: must not contain a NUL character")
    return shlex.quote(value)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field}: must be a string")
    return value


def _check_name(name: Any, field: str) -> None:
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{field}: {name!r} is not a valid environment variable name")


def _dead_man_minutes(job: Mapping[str, Any]) -> int:
    seconds = _positive_int(job.get("maxRuntimeSeconds"), "maxRuntimeSeconds") + _keep_on_failure(job)
    return math.ceil(seconds / 60) + DEAD_MAN_MARGIN_MINUTES


def _keep_on_failure(job: Mapping[str, Any]) -> int:
    # A failed run's instance stays up this long for debugging (0: it shuts down at once).
    debug = job.get("debug") or {}
    return _positive_int(debug["keepOnFailureSeconds"], "debug.keepOnFailureSeconds") if debug else 0


def _gpus(job: Mapping[str, Any]) -> int:
    # The GPUs the job asked for (0: none); the container then gets every GPU of its instance.
    gpus = (job.get("resources") or {}).get("gpus")
    return _positive_int(gpus, "resources.gpus") if gpus is not None else 0


def _heartbeat_interval(job: Mapping[str, Any]) -> int:
    """Seconds between heartbeats (0: none): three per heartbeat timeout, so
    one lost request does not time the job out."""
    if job.get("heartbeatSeconds") is None:
        return 0
    return max(1, _positive_int(job["heartbeatSeconds"], "heartbeatSeconds") // 3)


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field}: must be a positive integer")
    return value


def _ecr_registry(image: str) -> tuple[str, str]:
    """(registry, region) for a private ECR image, which needs a docker login;
    ("", "") for any other registry."""
    match = ECR_IMAGE.match(image)
    return (match["registry"], match["region"]) if match else ("", "")


def _secret_service(ref: str) -> str:
    """The service that holds ``ref``: a Secrets Manager ARN, or else an SSM parameter."""
    parts = ref.split(":")
    return "secretsmanager" if ref.startswith("arn:") and parts[2:3] == ["secretsmanager"] else "ssm"


def _secret_request(ref: str) -> str:
    """The JSON body of the call that reads ``ref``: GetSecretValue or GetParameter (decrypted)."""
    if _secret_service(ref) == "secretsmanager":
        return json.dumps({"SecretId": ref})
    return json.dumps({"Name": ref, "WithDecryption": True})


def _secret_region(ref: str, default: str) -> str:
    """An ARN names its own region (a secret may live elsewhere); a bare
    parameter name lives in the job's region."""
    parts = ref.split(":")
    if ref.startswith("arn:") and len(parts) > 3 and parts[3]:
        return parts[3]
    return default
