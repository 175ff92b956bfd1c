"""The ``jobscheduler`` command.

Client commands (schedule, list, status, watch, cancel, logs) join ``app``
as plain commands; everything about running the system on this machine lives
in the ``local`` group, whose default action starts the local stack.
"""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Run a Docker image on an EC2 Spot instance at a chosen time.")
local_app = typer.Typer(add_completion=False)
app.add_typer(local_app, name="local")


def _console() -> Console:
    # soft_wrap: long lines (URLs, log lines) stay whole when output goes to a file or CI log.
    return Console(highlight=False, soft_wrap=True)


@app.callback()
def _root() -> None:
    """Run a Docker image on an EC2 Spot instance at a chosen time."""


@local_app.callback(invoke_without_command=True)
def local(
    ctx: typer.Context,
    api_port: int = typer.Option(8000, help="Port of the API on 127.0.0.1."),
    aws_port: int = typer.Option(5000, help="Port of the emulated AWS endpoint (moto) on 127.0.0.1."),
    once: bool = typer.Option(False, "--once", help="Run the hello-world job, then stop; exit 0 only if TerminatedOK."),
    demo: bool = typer.Option(True, help="Schedule input/hello-world.json after start-up and follow it."),
) -> None:
    """Start the whole system on this machine: emulated AWS, the API, and an instance emulator."""
    if ctx.invoked_subcommand is not None:
        return
    from infra.local import main  # the stack's imports (moto, the runtime) are for this command only

    raise typer.Exit(main.serve(api_port, aws_port, once=once, demo_job=demo, console=_console()))


@local_app.command()
def interrupt(
    instance_id: str = typer.Argument(..., help="The instance to interrupt, e.g. i-0123456789abcdef0."),
    api_port: int = typer.Option(8000, help="API port of the running local stack."),
) -> None:
    """Deliver a Spot interruption warning (metadata and event) to an instance of the running local stack."""
    from infra.local import main

    raise typer.Exit(main.interrupt(api_port, instance_id, _console()))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
