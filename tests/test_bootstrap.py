"""The instance bootstrap, rendered for a job and run for real with bash.

Stand-ins for docker, aws, shutdown and systemctl sit first on PATH and record
what they are asked; one real HTTP server on 127.0.0.1 plays both the instance
metadata service (IMDSv2) and the jobscheduler API.
"""

from __future__ import annotations

import base64
import json
import os
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


def make_job(**fields: Any) -> dict[str, Any]:
    job = {
        "jobId": "job-1",
        "image": "public.ecr.aws/docker/library/busybox:1.36",
        "env": {"GREETING": "hello"},
        "command": ["echo", "hello world"],
        "maxRuntimeSeconds": 3600,
    }
    return job | fields


# --- the fake IMDS + API -------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeCloud:
    """IMDS and the API in one server; answers are set per test."""

    url: str = ""
    spot_notice: Callable[[], bool] = lambda: False
    callback_answers: list[int] = field(default_factory=list)
    instance_id_status: int = 200
    requests: list[Request] = field(default_factory=list)
    accepted_results: list[Any] = field(default_factory=list)

    def calls(self, suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]


def _handler(cloud: FakeCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _answer(self, status: int, body: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

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
            elif self.path == "/latest/meta-data/instance-id":
                self._answer(cloud.instance_id_status, INSTANCE_ID)
            elif self.path == "/latest/meta-data/spot/instance-action" and cloud.spot_notice():
                self._answer(200, '{"action": "terminate", "time": "2026-01-01T00:02:00Z"}')
            else:
                self._answer(404)

        def do_POST(self) -> None:
            request = self._record()
            status = cloud.callback_answers.pop(0) if cloud.callback_answers else 202
            if request.path.endswith("/callback") and status == 202:
                cloud.accepted_results.append(request.json())
            self._answer(status if request.path.endswith("/callback") else 202)

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


# --- stand-in executables ------------------------------------------------------------------

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

FAKE_AWS = """
if args[:2] == ["ecr", "get-login-password"]:
    print("ecr-password")
    sys.exit(0)
ref = args[args.index("--name" if "--name" in args else "--secret-id") + 1]
values = json.loads(os.environ.get("FAKE_AWS_SECRETS", "{}"))
if ref not in values:
    sys.exit("An error occurred (ParameterNotFound)")
print(values[ref])
"""

FAKE_SYSTEMCTL = """
(state / "started").touch()
"""


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


@pytest.fixture
def run_bootstrap(tmp_path: Path, cloud: FakeCloud) -> Callable[..., Run]:
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    fakes = {"docker": FAKE_DOCKER, "aws": FAKE_AWS, "shutdown": "", "systemctl": FAKE_SYSTEMCTL}
    for name, body in fakes.items():
        (bin_dir / name).write_text(_PRELUDE + body)
        (bin_dir / name).chmod(0o755)

    def run(
        job: dict[str, Any] | None = None,
        *,
        log_group: str | None = None,
        secret: str = SECRET,
        **fake_env: str,
    ) -> Run:
        script = render_user_data(
            job or make_job(), api_url=cloud.url, secret=secret, log_group=log_group, region=REGION
        )
        path = tmp_path / "user-data.sh"
        path.write_text(script)
        env = (
            os.environ
            | {
                "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                "TMPDIR": str(tmp_path),
                "FAKE_STATE": str(state),
                "JOBSCHEDULER_IMDS_ENDPOINT": cloud.url,
                "JOBSCHEDULER_RETRY_BASE_SECONDS": "0.001",
                "JOBSCHEDULER_SPOT_POLL_SECONDS": "0.05",
                "JOBSCHEDULER_STOP_GRACE_SECONDS": "7",
            }
            | fake_env
        )
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

    assert run.calls("systemctl") == [["start", "docker"]]
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


def test_bootstrap_logs_in_to_private_ecr(run_bootstrap):
    """A private ECR image is pulled after a docker login with the instance role's token."""
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/job:7"

    run = run_bootstrap(make_job(image=image))

    assert ["ecr", "get-login-password", "--region", "eu-west-1"] in run.calls("aws")
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert run.docker("login") == [["--username", "AWS", "--password-stdin", registry]]
    assert (run.state / "login-stdin").read_text() == "ecr-password\n"


# --- secrets -------------------------------------------------------------------------------


SECRETS = {
    "DB_PASSWORD": "/prod/db/password",
    "API_KEY": "arn:aws:secretsmanager:eu-west-2:123456789012:secret:api-AbCdEf",
}
SECRET_VALUES = {
    "/prod/db/password": "pa ss'w\"ord$(id)",
    SECRETS["API_KEY"]: "first line\nsecond line",
}


def test_bootstrap_gives_secrets_to_the_container_only(run_bootstrap, tmp_path):
    """Secrets are fetched on the instance and live only in docker run's environment."""
    run = run_bootstrap(
        make_job(secrets=SECRETS),
        FAKE_AWS_SECRETS=json.dumps(SECRET_VALUES),
        FAKE_DOCKER_DUMP_VARS="DB_PASSWORD API_KEY",
    )

    dumps = {command: env for command, env in run.docker_env()}
    assert dumps["run"] == {
        "DB_PASSWORD": SECRET_VALUES["/prod/db/password"],
        "API_KEY": SECRET_VALUES[SECRETS["API_KEY"]],
    }
    assert dumps["pull"] == dumps["info"] == {"DB_PASSWORD": None, "API_KEY": None}
    [argv] = run.docker("run")
    assert "-e" in argv and "DB_PASSWORD" in argv and "API_KEY" in argv
    assert run.calls("aws") == [
        ["ssm", "get-parameter", "--region", REGION, "--with-decryption",
         "--name", "/prod/db/password", "--query", "Parameter.Value", "--output", "text"],
        ["secretsmanager", "get-secret-value", "--region", "eu-west-2",
         "--secret-id", SECRETS["API_KEY"], "--query", "SecretString", "--output", "text"],
    ]  # fmt: skip
    leaks = [run.script, run.proc.stdout, run.proc.stderr, json.dumps(run.calls("docker"))]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "docker-env.jsonl"]
    leaks += [p.read_text() for p in files]
    for value in SECRET_VALUES.values():
        assert not any(value in text for text in leaks)


def test_bootstrap_reports_failure_when_a_secret_is_missing(run_bootstrap, cloud):
    """An unreadable secret fails the job (125) without running the container."""
    run = run_bootstrap(make_job(secrets=SECRETS), FAKE_AWS_SECRETS="{}")

    assert run.docker("run") == []
    assert [c.json()["status"] for c in cloud.calls("/callback")] == ["FinishedNOK"]
    assert cloud.calls("/callback")[0].json()["exitCode"] == 125


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
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck (CI installs it)")
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
    """A typical job uses well under half of EC2's 16 KB, and its gzipped base64 decodes to the same script."""
    job = make_job(
        env={f"SETTING_{i}": "some-configuration-value" for i in range(10)},
        heartbeatSeconds=60,
        secrets=SECRETS,
    )
    api_url = "https://abc.execute-api.us-east-1.amazonaws.com/api"
    script = render_user_data(
        job, api_url=api_url, secret="x" * 43, log_group="/jobscheduler/jobs", region=REGION
    )

    assert len(script.encode()) < MAX_USER_DATA_BYTES // 2
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
