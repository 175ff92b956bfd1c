"""The ``jobscheduler`` command.

Client commands (schedule, list, status, watch, cancel, release, logs) talk to any
deployment through :mod:`jobscheduler.client`; every one takes ``--json``
for machines and exits with a code scripts can rely on (see
``client.OK`` ... ``client.API_ERROR``); ``ui`` serves the web console
(:mod:`jobscheduler.ui`) for the same endpoint. Everything about running the system on
this machine lives in the ``local`` group, whose default action starts the
local stack.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from jobscheduler import client as api
from jobscheduler import render

EXIT_CODES = ("Exit codes: 0 ok; 1 the watched job ended, but not TerminatedOK; 2 bad usage, or a request the "
              "API refused (400); 3 no such job or schedule (404); 4 the API could not be reached or answered "
              "another error.")
app = typer.Typer(no_args_is_help=True, add_completion=False, epilog=EXIT_CODES,
                  help="Run a Docker image on an EC2 Spot instance at a chosen time.")
local_app = typer.Typer(add_completion=False)
app.add_typer(local_app, name="local")

ENDPOINT = "Endpoint"
ApiOption = Annotated[str | None, typer.Option(
    "--api", envvar=api.API_VARIABLE, rich_help_panel=ENDPOINT, show_default=False,
    help="Base URL of the API. Default: the ApiUrl output of the deployed stack.")]
StackOption = Annotated[str, typer.Option(
    "--stack", envvar=api.STACK_VARIABLE, rich_help_panel=ENDPOINT,
    help="CloudFormation stack whose ApiUrl output is the endpoint (when --api is not given).")]
RegionOption = Annotated[str | None, typer.Option(
    "--region", rich_help_panel=ENDPOINT, show_default=False,
    help="AWS region of the stack (default: your AWS configuration's).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]
JobArgument = Annotated[str, typer.Argument(help="The job id.", show_default=False)]
IntervalOption = Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between two polls.")]
_RELATIVE = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_console = render.console


def _errors() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int) -> NoReturn:
    _errors().print(f"[red]error:[/red] {message}", markup=True)
    raise typer.Exit(code)


def _emit(value: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _connect(api_url: str | None, stack: str, region: str | None) -> api.Client:
    try:
        return api.Client.connect(api_url, stack, region)
    except api.ApiError as exc:
        _fail(str(exc), exc.exit_code)


def _call(action: Callable[..., Any], *args: Any) -> Any:
    """Run one API call; its error becomes a message on stderr and the exit code of its kind."""
    try:
        return action(*args)
    except api.ApiError as exc:
        _fail(str(exc), exc.exit_code)


@app.callback()
def _root() -> None:
    """Run a Docker image on an EC2 Spot instance at a chosen time."""


@app.command()
def schedule(
    file: Annotated[Path | None, typer.Argument(
        help="A job body (JSON, like input/*.json); '-' reads standard input.", show_default=False)] = None,
    image: Annotated[str | None, typer.Option(help="Docker image (overrides the file's).", show_default=False)] = None,
    at: Annotated[str | None, typer.Option(
        help="When: RFC 3339 with an offset, 'now', or from now like +30m, +2h, +1d.", show_default=False)] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", "-e", help="NAME=value for the container; repeat for more.", show_default=False)] = None,
    command: Annotated[str | None, typer.Option(
        help="The container's command, split like a shell would: --command 'sh -c \"echo hi\"'.",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option(help="A name to recognise the job by.", show_default=False)] = None,
    instance_type: Annotated[list[str] | None, typer.Option(
        "--instance-type", help="An instance type Spot may choose; repeat for more.", show_default=False)] = None,
    max_runtime: Annotated[int | None, typer.Option(
        "--max-runtime", help="Seconds the job may run.", show_default=False)] = None,
    vcpus: Annotated[int | None, typer.Option(
        "--vcpus", help="At least this many vCPUs (resources; with --memory, instead of --instance-type).",
        show_default=False)] = None,
    memory: Annotated[float | None, typer.Option(
        "--memory", help="At least this much memory in GiB (resources).", show_default=False)] = None,
    burstable: Annotated[bool, typer.Option("--burstable", help="Let burstable types (t3 ...) meet the resources.")]
    = False,
    gpus: Annotated[int | None, typer.Option(
        "--gpus", help="At least this many NVIDIA GPUs (resources; with --vcpus and --memory): a GPU type, "
        "the GPU image, and the container gets every GPU.", show_default=False)] = None,
    max_price: Annotated[str | None, typer.Option(
        "--max-price", help="USD per hour Spot may cost at most, like 0.08.", show_default=False)] = None,
    retry: Annotated[int | None, typer.Option(
        "--retry", help="Runs in all for a run that fails (retry.attempts), each on a new instance.",
        show_default=False)] = None,
    retry_on: Annotated[list[int] | None, typer.Option(
        "--retry-on", help="An exit code that earns another run (default: any non-zero); repeat for more.",
        show_default=False)] = None,
    retry_delay: Annotated[int | None, typer.Option(
        "--retry-delay", help="Seconds between a failed run and the next.", show_default=False)] = None,
    keep_on_failure: Annotated[int | None, typer.Option(
        "--keep-on-failure", help="Seconds a failed run's instance stays up for a shell (SSM Session Manager); "
        "end it early with 'jobscheduler release JOB'.", show_default=False)] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="Send the same key again and get the same job, never a second one.", show_default=False)] = None,
    watch_job: Annotated[bool, typer.Option("--watch", help="Then follow the job to its end (exit code as watch).")]
    = False,
    interval: IntervalOption = 2.0,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Schedule a job from a file, from options, or both (options win)."""
    body = _body(file, image=image, at=at, env=env or [], command=command, name=name,
                 instance_types=instance_type or [], max_runtime=max_runtime)
    body.update(_shape_options(max_price=max_price, retry=retry, retry_on=retry_on or [], retry_delay=retry_delay,
                               keep_on_failure=keep_on_failure))
    body.update(_resources_option(vcpus, memory, burstable, gpus))
    client = _connect(api_url, stack, region)
    job = _call(client.schedule, body, idempotency_key)
    if as_json and not watch_job:
        _emit(job)
    elif not as_json:
        console = _console()
        console.print(Text.assemble("scheduled ", (job["jobId"], "bold"), f"  {job.get('name') or job['image']}  "
                                    f"at {job['scheduledAt']}  ", render.status(job["status"])))
        if not watch_job:
            console.print(f"[dim]follow it: jobscheduler watch {job['jobId']}[/dim]")
    if watch_job:
        raise typer.Exit(_watch(client, job["jobId"], interval, as_json))


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(
        help="Only jobs with this status (Scheduled, Running, TerminatedOK ...).", show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Jobs per page.")] = 50,
    next_token: Annotated[str | None, typer.Option(help="Continue after a previous page.", show_default=False)]
    = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow nextToken to the last page.")] = False,
    schedule: Annotated[str | None, typer.Option(
        "--schedule", help="Only the jobs this schedule made, newest firing first.", show_default=False)] = None,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest scheduled first."""
    client = _connect(api_url, stack, region)
    page = _call(client.list, status, limit, next_token, schedule)
    jobs = list(page["jobs"])
    while all_pages and page.get("nextToken"):
        token = page["nextToken"]
        page = _call(client.list, status, limit, token, schedule)
        jobs += page["jobs"]
    if as_json:
        _emit({"jobs": jobs, "nextToken": page.get("nextToken")})
        return
    console = _console()
    if not jobs:
        console.print(f"no jobs{f' with status {status}' if status else ''}")
        return
    console.print(render.job_table(jobs))
    if page.get("nextToken"):
        console.print(f"[dim]more: jobscheduler list --next-token {page['nextToken']}"
                      f"{f' --status {status}' if status else ''}  (or --all)[/dim]")


@app.command()
def status(
    job_id: JobArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a job: its fields, cost, attempts and the timeline of its workflow's states."""
    client = _connect(api_url, stack, region)
    job = _call(client.get, job_id)
    timeline = _call(client.timeline, job_id)
    if as_json:
        _emit({"job": job, "timeline": timeline})
        return
    console = _console()
    console.print(render.job_details(job))
    attempts = render.attempts_table(job.get("attempts") or [])
    if attempts is not None:
        console.print()
        console.print(attempts)
    console.print()
    console.print(render.timeline(timeline))


@app.command()
def watch(
    job_id: JobArgument,
    interval: IntervalOption = 2.0,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a job until it ends, one line per status change; exit 0 only if it ended TerminatedOK."""
    raise typer.Exit(_watch(_connect(api_url, stack, region), job_id, interval, as_json))


@app.command()
def cancel(
    job_id: JobArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel a job in any phase; its instance, if any, is terminated."""
    client = _connect(api_url, stack, region)
    job = _call(client.cancel, job_id)
    if as_json:
        _emit(job)
        return
    _console().print(Text.assemble("cancel accepted for ", (job["jobId"], "bold"), ": ", render.status(job["status"]),
                                   (f"  {job.get('statusReason') or ''}", "dim")))


@app.command()
def release(
    job_id: JobArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a failed run's debug hold now: its instance is terminated and the job ends TerminatedNOK."""
    client = _connect(api_url, stack, region)
    job = _call(client.release, job_id)
    if as_json:
        _emit(job)
        return
    _console().print(Text.assemble("released ", (job["jobId"], "bold"), ": its instance is being terminated"))


@app.command()
def logs(
    job_id: JobArgument,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new output until the job ends.")]
    = False,
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Prefix each line with its time (UTC).")]
    = False,
    interval: IntervalOption = 2.0,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the container's output (every instance the job ran on, in order)."""
    client = _connect(api_url, stack, region)
    instance = None
    for event in _log_events(client, job_id, follow, interval):
        if as_json:
            typer.echo(json.dumps(event, sort_keys=True))
            continue
        if event["instanceId"] != instance:
            instance = event["instanceId"]
            _errors().print(f"[dim]── output of {instance} ──[/dim]")
        stamp = f"{datetime.fromtimestamp(event['timestamp'] / 1000, UTC):%Y-%m-%dT%H:%M:%S.%fZ}"[:-4] + "Z "
        typer.echo(f"{stamp if timestamps else ''}{event['message']}")


def _log_events(client: api.Client, job_id: str, follow: bool, interval: float) -> Iterator[dict[str, Any]]:
    token = None
    ended = False
    while True:
        page = _call(client.logs, job_id, 1000, token)
        token = page["nextToken"]
        yield from page["events"]
        if page["events"]:
            continue
        # An empty page: everything so far is out. Following, wait for more until the job has
        # ended and one more read after that found nothing.
        if not follow or ended:
            return
        ended = _call(client.get, job_id)["status"] in api.TERMINAL
        if not ended:
            time.sleep(interval)


def _watch(client: api.Client, job_id: str, interval: float, as_json: bool) -> int:
    console, seen = _console(), None
    with console.status("waiting for the next status change", spinner="dots") if not as_json else _nothing():
        while True:
            job = _call(client.get, job_id)
            if job["status"] != seen:
                seen = job["status"]
                if as_json:
                    typer.echo(json.dumps(job, sort_keys=True))
                else:
                    console.print(render.change_line(job))
            if seen in api.TERMINAL:
                break
            time.sleep(interval)
    if not as_json:
        exit_code = job.get("exitCode")
        console.print(Text.assemble((job_id, "bold"), " ended ", render.status(seen),
                                    f"  exit code {exit_code}" if exit_code is not None else ""))
    return api.OK if seen == "TerminatedOK" else api.JOB_NOT_OK


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _body(file: Path | None, *, image: str | None, at: str | None, env: list[str], command: str | None,
          name: str | None, instance_types: list[str], max_runtime: int | None) -> dict[str, Any]:
    """The POST /jobs body from the file and the options; a usage error for anything malformed."""
    body: dict[str, Any] = _read_body(file) if file else {}
    if image:
        body["image"] = image
    if "image" not in body:
        raise typer.BadParameter("give a job file or --image", param_hint="FILE / --image")
    if at is not None:
        when = _when(at)
        if when is None:
            body.pop("scheduledAt", None)
        else:
            body["scheduledAt"] = when
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not NAME=value", param_hint="--env")
        body.setdefault("env", {})[key] = value
    if command is not None:
        try:
            body["command"] = shlex.split(command)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--command") from None
    if name is not None:
        body["name"] = name
    if max_runtime is not None:
        body["maxRuntimeSeconds"] = max_runtime
    if instance_types:
        body["instanceTypes"] = instance_types
    return body


def _shape_options(*, max_price: str | None, retry: int | None, retry_on: list[int],
                   retry_delay: int | None, keep_on_failure: int | None) -> dict[str, Any]:
    """The body fields given as options (the API checks their values and names the field)."""
    fields: dict[str, Any] = {}
    if max_price is not None:
        fields["maxPrice"] = max_price
    if retry is None and (retry_on or retry_delay is not None):
        raise typer.BadParameter("needs --retry (the runs in all)", param_hint="--retry-on / --retry-delay")
    if retry is not None:
        fields["retry"] = {"attempts": retry, **({"onExitCodes": retry_on} if retry_on else {}),
                           **({"delaySeconds": retry_delay} if retry_delay is not None else {})}
    if keep_on_failure is not None:
        fields["debug"] = {"keepOnFailureSeconds": keep_on_failure}
    return fields


def _resources_option(vcpus: int | None, memory: float | None, burstable: bool,
                      gpus: int | None = None) -> dict[str, Any]:
    """``resources`` from --vcpus and --memory (both or neither), --burstable and --gpus."""
    if vcpus is None and memory is None:
        if burstable or gpus is not None:
            raise typer.BadParameter("needs --vcpus and --memory", param_hint="--gpus" if gpus else "--burstable")
        return {}
    if vcpus is None or memory is None:
        raise typer.BadParameter("give both, or neither", param_hint="--vcpus / --memory")
    return {"resources": {"vcpus": vcpus, "memoryGiB": memory, **({"burstable": True} if burstable else {}),
                          **({"gpus": gpus} if gpus is not None else {})}}


def _read_body(file: Path) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"cannot read a JSON job body from {file}: {exc}", param_hint="FILE") from None
    if not isinstance(body, dict):
        raise typer.BadParameter(f"{file} holds no JSON object", param_hint="FILE")
    return body


def _when(value: str) -> str | None:
    """``now`` -> None (the API's default); ``+30m`` -> that long from now; anything else as given."""
    if value.strip().lower() == "now":
        return None
    if value.startswith("+") and value[1:-1].isdigit() and value[-1] in _RELATIVE:
        moment = datetime.now(UTC) + timedelta(seconds=int(value[1:-1]) * _RELATIVE[value[-1]])
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port of the console on 127.0.0.1.")] = 8080,
    api_url: ApiOption = None,
    stack: StackOption = api.DEFAULT_STACK,
    region: RegionOption = None,
) -> None:
    """Serve the web console on 127.0.0.1: jobs, their workflow graph, logs and cost; schedule and cancel.

    The console forwards the page's calls to the API, signed with your AWS credentials when the API is
    in AWS (the same rules as every other command); the browser never holds them.
    """
    from jobscheduler.ui import server

    client = _connect(api_url, stack, region)
    try:
        server.serve(client, port, lambda url: _console().print(
            f"Console: {url}  (API: {client.base_url}; Ctrl-C stops)", markup=False))
    except server.PortTaken as exc:
        _fail(str(exc), api.USAGE)
    except KeyboardInterrupt:
        pass


@local_app.callback(invoke_without_command=True)
def local(
    ctx: typer.Context,
    api_port: int = typer.Option(8000, help="Port of the API on 127.0.0.1."),
    aws_port: int = typer.Option(5000, help="Port of the emulated AWS endpoint (moto) on 127.0.0.1."),
    once: bool = typer.Option(False, "--once", help="Run the hello-world job, then stop; exit 0 only if TerminatedOK."),
    demo: bool = typer.Option(True, help="Schedule input/hello-world.json after start-up and follow it."),
    console_port: int = typer.Option(8080, help="Port of the web console on 127.0.0.1 (another if taken)."),
) -> None:
    """Start the whole system on this machine: emulated AWS, the API, an instance emulator and the web console."""
    if ctx.invoked_subcommand is not None:
        return
    main = _local_stack()
    raise typer.Exit(main.serve(api_port, aws_port, once=once, demo_job=demo, console=_console(),
                                console_port=console_port))


@local_app.command()
def interrupt(
    instance_id: str = typer.Argument(..., help="The instance to interrupt, e.g. i-0123456789abcdef0."),
    api_port: int = typer.Option(8000, help="API port of the running local stack."),
) -> None:
    """Deliver a Spot interruption warning (metadata and event) to an instance of the running local stack."""
    raise typer.Exit(_local_stack().interrupt(api_port, instance_id, _console()))


# What only the local stack imports: the emulator and its web server, the runtime's web framework and validator.
LOCAL_EXTRA = {"moto", "flask", "werkzeug", "chalice", "fastjsonschema", "cronsim"}


def _local_stack() -> Any:
    """The local stack's module; its dependencies (the ``local`` extra) are for these commands only."""
    import importlib

    missing = []
    for name in sorted(LOCAL_EXTRA):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            missing.append(name)
    if missing:
        _console().print(f"jobscheduler local needs the local stack's packages ({', '.join(missing)} missing): "
                         "pip install 'jobscheduler[local]'", markup=False)
        raise typer.Exit(api.USAGE)
    from jobscheduler.local import main

    return main


# --- recurring schedules: `jobscheduler schedules ...`, each firing one job ---------------------------------

schedules_app = typer.Typer(add_completion=False, no_args_is_help=True, epilog=EXIT_CODES,
                            help="Recurring schedules: run a job on a cron or a rate, one job per firing.")
ScheduleArgument = Annotated[str, typer.Argument(help="The schedule id (sch-...).", show_default=False)]
_CRON_FIELDS = 6


@schedules_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(
        help="The job to run at each firing: a job body like input/*.json (without scheduledAt), or a whole "
             "schedule body with expression and job; '-' reads standard input.", show_default=False)],
    cron: Annotated[str | None, typer.Option(
        help="EventBridge Scheduler cron: 'cron(0 2 * * ? *)' or its six fields '0 2 * * ? *' "
             "(minutes hours day-of-month month day-of-week year; ? in one day field).", show_default=False)]
    = None,
    rate: Annotated[str | None, typer.Option(
        help="A rate: 'rate(1 hour)' or '1 hour' (minute(s), hour(s), day(s); at least a minute).",
        show_default=False)] = None,
    tz: Annotated[str | None, typer.Option(
        "--tz", help="IANA time zone of the cron's times, e.g. Europe/Berlin (default UTC).", show_default=False)]
    = None,
    overlap: Annotated[str | None, typer.Option(
        help="A firing while the previous job runs: skip (default), allow, or cancel-previous.",
        show_default=False)] = None,
    name: Annotated[str | None, typer.Option(help="A name to recognise the schedule by.", show_default=False)]
    = None,
    start: Annotated[str | None, typer.Option(help="No firing before this RFC 3339 time.", show_default=False)]
    = None,
    end: Annotated[str | None, typer.Option(help="No firing after this RFC 3339 time.", show_default=False)]
    = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused (resume it later).")] = False,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule from a job file and a --cron or --rate; prints its next runs."""
    body = _schedule_body(file, cron=cron, rate=rate, tz=tz, overlap=overlap, name=name, start=start, end=end,
                          paused=paused)
    schedule = _call(_connect(api_url, stack, region).create_schedule, body)
    if as_json:
        _emit(schedule)
        return
    console = _console()
    console.print(render.schedule_details(schedule))
    console.print(f"[dim]its jobs: jobscheduler list --schedule {schedule['scheduleId']}[/dim]")


@schedules_app.command("list")
def list_schedules(
    limit: Annotated[int, typer.Option(min=1, max=100, help="Schedules per page.")] = 50,
    next_token: Annotated[str | None, typer.Option(help="Continue after a previous page.", show_default=False)]
    = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow nextToken to the last page.")] = False,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """List schedules, newest first, each with its next run."""
    client = _connect(api_url, stack, region)
    page = _call(client.list_schedules, limit, next_token)
    found = list(page["schedules"])
    while all_pages and page.get("nextToken"):
        page = _call(client.list_schedules, limit, page["nextToken"])
        found += page["schedules"]
    if as_json:
        _emit({"schedules": found, "nextToken": page.get("nextToken")})
        return
    console = _console()
    if not found:
        console.print("no schedules")
        return
    console.print(render.schedule_table(found))
    if page.get("nextToken"):
        console.print(f"[dim]more: jobscheduler schedules list --next-token {page['nextToken']}  (or --all)[/dim]")


@schedules_app.command("show")
def show(
    schedule_id: ScheduleArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a schedule: its next runs and the latest jobs it made."""
    schedule = _call(_connect(api_url, stack, region).get_schedule, schedule_id)
    if as_json:
        _emit(schedule)
    else:
        _console().print(render.schedule_details(schedule))


@schedules_app.command("pause")
def pause(
    schedule_id: ScheduleArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause a schedule: no firing until it is resumed (its jobs go on)."""
    _switch(schedule_id, False, api_url, stack, region, as_json)


@schedules_app.command("resume")
def resume(
    schedule_id: ScheduleArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a paused schedule: it fires again from its next run on."""
    _switch(schedule_id, True, api_url, stack, region, as_json)


@schedules_app.command("delete")
def delete(
    schedule_id: ScheduleArgument,
    api_url: ApiOption = None, stack: StackOption = api.DEFAULT_STACK, region: RegionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a schedule; the jobs it already made go on."""
    _call(_connect(api_url, stack, region).delete_schedule, schedule_id)
    if as_json:
        _emit({"scheduleId": schedule_id, "deleted": True})
    else:
        _console().print(f"deleted {schedule_id}")


def _switch(schedule_id: str, enabled: bool, api_url: str | None, stack: str, region: str | None,
            as_json: bool) -> None:
    schedule = _call(_connect(api_url, stack, region).update_schedule, schedule_id, {"enabled": enabled})
    if as_json:
        _emit(schedule)
        return
    runs = schedule.get("nextRuns") or []
    _console().print(f"{'resumed' if enabled else 'paused'} {schedule_id}"
                         + (f"; next run {runs[0]} (UTC)" if runs else ""))


def _schedule_body(file: Path, *, cron: str | None, rate: str | None, tz: str | None, overlap: str | None,
                   name: str | None, start: str | None, end: str | None, paused: bool) -> dict[str, Any]:
    """The POST /schedules body from the file and the options; a usage error for anything malformed."""
    loaded = _read_body(file)
    body: dict[str, Any] = loaded if "job" in loaded else {"job": loaded}
    if isinstance(body["job"], dict) and body["job"].pop("scheduledAt", None) is not None:
        _errors().print(f"[dim]{file}: its scheduledAt is left out: each firing sets the job's time[/dim]")
    if cron and rate:
        raise typer.BadParameter("give --cron or --rate, not both", param_hint="--cron / --rate")
    if cron:
        body["expression"] = cron if cron.startswith("cron(") else f"cron({cron})"
        if len(body["expression"][5:-1].split()) != _CRON_FIELDS:
            raise typer.BadParameter("a cron has six fields: minutes hours day-of-month month day-of-week year, "
                                     "like '0 2 * * ? *'", param_hint="--cron")
    if rate:
        body["expression"] = rate if rate.startswith("rate(") else f"rate({' '.join(rate.split())})"
    if "expression" not in body:
        raise typer.BadParameter("give --cron or --rate (or a schedule body with an expression)",
                                 param_hint="--cron / --rate")
    for key, value in (("timezone", tz), ("overlap", overlap), ("name", name), ("startAt", start), ("endAt", end)):
        if value is not None:
            body[key] = value
    if paused:
        body["enabled"] = False
    return body


app.add_typer(schedules_app, name="schedules")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
