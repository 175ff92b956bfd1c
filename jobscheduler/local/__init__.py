"""The whole system on this machine: ``jobscheduler local``.

- ``cloud``: moto in server mode on 127.0.0.1 and the stack's resources in it
  (table, launch template, subnets, log group, the state machine from the one
  ASL file); ``aws_process`` runs that server in a child process, on a core
  of its own.
- ``api``: the very Chalice ``app`` that Lambda runs, served over real HTTP (waitress).
- ``moto_parity``, ``moto_speedups``, ``moto_index``: where moto must agree with
  AWS, and where it is made faster without changing an answer.
- ``instances``, ``metadata``, ``standins``, ``docker_command``, ``docker_runner``: the instance
  emulator. Every instance the workflow launches boots the real bootstrap
  script with an emulated metadata service and stand-ins for ``docker``,
  ``shutdown`` and ``systemctl``.
- ``events``: the EventBridge events moto does not emit, and the sweeper's schedule.
- ``stack``: starts and stops all of it; ``demo``: the hello-world walk-through.

Nothing here is imported at package import time: the docker stand-in runs as
``python -m jobscheduler.local.docker_command`` and must start quickly.
"""
