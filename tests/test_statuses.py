"""Statuses, their moves and the tag keys are defined once (chalicelib.statuses); everything else agrees.

The workflow's ASL cannot import Python, so it is read: every status it writes,
every guard on a status write, every status a Choice compares and every tag
key it puts on an instance is checked against the one table. The runtime's
own writes go through ``store.update``, which checks each guard against the
table before writing; its calls are also read from the code here.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chalicelib import statuses, store
from infra import definition
from jobscheduler import client, render

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
OPENAPI = RUNTIME / "chalicelib" / "openapi.json"
_FORMAT = re.compile(r"States\.Format\('(.*?)'")
_NOT_IN = re.compile(r"NOT \((#\w+) IN \(([^)]*)\)\)")
_IN = re.compile(r"(#\w+) IN \(([^)]*)\)")
_EQUALS = re.compile(r"(#\w+) = (:\w+)")


# --- the table itself ---------------------------------------------------------------------------------------


def test_the_table_has_every_status_once_with_its_meaning():
    """Each status has one row and a meaning; terminal statuses never move, and every other one may end."""
    assert len(set(statuses.STATUSES)) == len(statuses.STATUSES)
    assert set(statuses.TRANSITIONS) == set(statuses.MEANINGS) == set(statuses.STATUSES)
    assert statuses.TERMINAL < set(statuses.STATUSES)
    for status, moves in statuses.TRANSITIONS.items():
        assert moves <= set(statuses.STATUSES) and status not in moves
        assert (not moves) if status in statuses.TERMINAL else statuses.TERMINAL <= moves


def test_every_status_is_reached_from_scheduled_and_every_job_can_end():
    """No status is unreachable, and from every status an end is reachable."""
    reached, frontier = {statuses.SCHEDULED}, [statuses.SCHEDULED]
    while frontier:
        for nxt in statuses.TRANSITIONS[frontier.pop()] - reached:
            reached.add(nxt)
            frontier.append(nxt)
    assert reached == set(statuses.STATUSES)
    assert all(statuses.TRANSITIONS[s] & statuses.TERMINAL for s in statuses.STATUSES if s not in statuses.TERMINAL)


def test_a_finished_job_becomes_terminated_and_in_flight_means_an_instance_may_exist():
    """The Finished -> Terminated mapping is a move of the table; in flight is between Scheduled and the end."""
    for finished, terminated in statuses.TERMINATED_AFTER.items():
        assert terminated in statuses.TERMINAL and statuses.may_move(finished, terminated)
    assert set(statuses.IN_FLIGHT) == set(statuses.STATUSES) - statuses.TERMINAL - {statuses.SCHEDULED}


def test_the_check_refuses_a_move_the_table_does_not_have():
    """A guard that lets a write move a job backwards, or out of an end, or no guard at all, is refused."""
    statuses.check_write(statuses.RUNNING, allowed_from=(statuses.REQUESTED, statuses.INTERRUPTED))
    statuses.check_write(statuses.FAILED, not_in=tuple(statuses.TERMINAL))
    statuses.check_write(None, allowed_from=tuple(statuses.TERMINAL))  # no status written: any guard
    statuses.check_write(statuses.INTERRUPTED, allowed_from=(statuses.RUNNING, statuses.INTERRUPTED))  # no move
    refused = [
        ((statuses.REQUESTED,), (), statuses.SCHEDULED, "Requested may not become Scheduled"),
        ((statuses.TERMINATED_OK,), (), statuses.FAILED, "TerminatedOK may not become Failed"),
        ((), (statuses.TERMINATED_OK,), statuses.FAILED, "may not become Failed"),
        ((statuses.FINISHED_OK,), (), statuses.INTERRUPTED, "FinishedOK may not become Interrupted"),
        ((), (), statuses.CANCELLED, "must name the statuses it may leave"),
        (("Done",), (), statuses.FAILED, "not statuses: ['Done']"),
    ]
    for allowed_from, not_in, status, message in refused:
        with pytest.raises(ValueError, match=re.escape(message)):
            statuses.check_write(status, allowed_from, not_in)


def test_store_update_checks_its_guard_before_writing():
    """The runtime's one way to write a job refuses a guard the table does not allow (nothing is sent)."""
    with pytest.raises(ValueError, match="TerminatedOK may not become Running"):
        store.update("00000000-0000-0000-0000-000000000000", {"status": statuses.RUNNING},
                     allowed_from=(statuses.TERMINATED_OK,))
    with pytest.raises(ValueError, match="must name the statuses it may leave"):
        store.update("00000000-0000-0000-0000-000000000000", {"status": statuses.CANCELLED})


# --- the workflow ----------------------------------------------------------------------------------------------


@dataclass
class Write:
    """One status write of the workflow: the statuses its guard lets through, the statuses it may write."""

    state: str
    guard: frozenset[str]
    targets: frozenset[str]


def _edges(state: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    """(next state, whether the state's own result reaches it)."""
    if "Next" in state:
        yield state["Next"], True
    yield from ((choice["Next"], True) for choice in state.get("Choices", []))
    if "Default" in state:
        yield state["Default"], True
    yield from ((catch["Next"], False) for catch in state.get("Catch", []))


def _outcome_fields(states: dict[str, Any], name: str, field: str) -> set[str]:
    """Every literal ``$.outcome.<field>`` may hold when ``name`` is entered, from the states that set it."""
    callers: dict[str, list[tuple[str, bool]]] = {}
    for caller, state in states.items():
        for target, with_result in _edges(state):
            callers.setdefault(target, []).append((caller, with_result))
    found: set[str] = set()
    seen, frontier = {name}, [name]
    while frontier:
        for caller, with_result in callers.get(frontier.pop(), []):
            state = states[caller]
            if with_result and state.get("ResultPath") == "$.outcome":
                if state["Type"] == "Pass":
                    if field in state["Parameters"]:
                        found.add(state["Parameters"][field])
                elif field == "status":  # RunJob: the runtime completes the task with the Terminated status
                    found |= set(statuses.TERMINATED_AFTER.values())
            elif caller not in seen:
                seen.add(caller)
                frontier.append(caller)
    return found


def _literal(values: dict[str, Any], placeholder: str) -> str:
    value = values[placeholder]
    assert set(value) == {"S"}, f"{placeholder} compares the status with {value}, not a literal"
    return str(value["S"])


def workflow_writes(states: dict[str, Any]) -> list[Write]:
    """Each DynamoDB UpdateItem task, read: its status guard and the statuses it may write."""
    writes = []
    for name, state in states.items():
        if ":dynamodb:updateItem" not in state.get("Resource", ""):
            continue
        params = state["Parameters"]
        (status_name,) = [k for k, v in params["ExpressionAttributeNames"].items() if v == "status"]
        values = params["ExpressionAttributeValues"]
        update = params.get("UpdateExpression") or _FORMAT.match(params["UpdateExpression.$"])[1]
        condition = params.get("ConditionExpression", "")
        guard = frozenset(statuses.STATUSES)
        for found in _NOT_IN.findall(condition):
            guard -= {_literal(values, p.strip()) for p in found[1].split(",") if found[0] == status_name}
        for found in _IN.findall(_NOT_IN.sub("", condition)):
            if found[0] == status_name:
                guard &= {_literal(values, p.strip()) for p in found[1].split(",")}
        for found in _EQUALS.findall(condition):
            if found[0] == status_name:
                guard &= {_literal(values, found[1])}
        targets: set[str] = set()
        for found in _EQUALS.findall(update):
            if found[0] == status_name:
                value = values[found[1]]
                assert value.get("S.$", "$.outcome.status") == "$.outcome.status", (name, value)
                targets |= {value["S"]} if "S" in value else _outcome_fields(states, name, "status")
        writes.append(Write(name, guard, frozenset(targets)))
    return writes


def test_the_workflow_reads_as_the_table_expects():
    """The reading finds each kind of write: a literal move, a move to the job's outcome, a guard only."""
    writes = {w.state: w for w in workflow_writes(definition.states())}
    assert writes["MarkRequested"] == Write("MarkRequested", frozenset({statuses.SCHEDULED}),
                                            frozenset({statuses.REQUESTED}))
    assert writes["RunJob"].targets == {statuses.RUNNING}
    assert writes["MarkDone"].guard == set(statuses.STATUSES) - statuses.TERMINAL
    assert writes["MarkDone"].targets == statuses.TERMINAL
    assert writes["MarkEndedWithoutInstance"].targets == {statuses.CANCELLED, statuses.FAILED}
    assert writes["RecordInstance"].targets == set() and writes["RecordInstance"].guard == {
        statuses.REQUESTED, statuses.INTERRUPTED}


def test_every_status_write_of_the_workflow_is_a_move_of_the_table():
    """Each status the ASL writes is a status, and each status its guard lets through may become it."""
    writes = workflow_writes(definition.states())
    assert len(writes) >= 7
    for write in writes:
        assert write.guard, f"{write.state} lets no status through"
        assert write.targets <= set(statuses.STATUSES), write
        if write.targets:
            assert write.guard != set(statuses.STATUSES), f"{write.state} writes a status without a guard"
        refused = sorted(f"{old} -> {new}" for old in write.guard for new in write.targets
                         if not statuses.may_move(old, new))
        assert refused == [], f"{write.state}: {refused}"


def test_a_guard_that_lets_a_finished_job_move_back_is_found():
    """The check has teeth: MarkInterrupted guarded only against an end would let FinishedOK become Interrupted."""
    states = json.loads(definition.text())["States"]
    states["MarkInterrupted"]["Parameters"]["ConditionExpression"] = (
        "NOT (#status IN (:requested, :running, :interrupted))")  # any other status, Finished ones included
    (write,) = [w for w in workflow_writes(states) if w.state == "MarkInterrupted"]
    assert not all(statuses.may_move(old, statuses.INTERRUPTED) for old in write.guard)


def _choice_rules(rules: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for rule in rules:
        yield rule
        yield from _choice_rules(rule.get("And", []) + rule.get("Or", []) + ([rule["Not"]] if "Not" in rule else []))


def test_every_status_the_workflow_sets_or_compares_is_a_status():
    """Outcomes set by Pass states, attempts' outcomes, and statuses a Choice compares are the table's."""
    states = definition.states()
    for name, state in states.items():
        if state["Type"] == "Pass" and state.get("ResultPath") == "$.outcome":
            assert state["Parameters"]["status"] in statuses.STATUSES, name
            assert state["Parameters"].get("attempt", statuses.PREEMPTED) in statuses.ATTEMPT_OUTCOMES, name
        for rule in _choice_rules(state.get("Choices", [])):
            if rule.get("Variable", "").endswith(".status.S"):
                assert rule["StringEquals"] in statuses.STATUSES, name
    assert _outcome_fields(states, "MarkInterrupted", "attempt") == {statuses.PREEMPTED, statuses.LOST}


def test_the_workflow_ends_a_finished_job_as_the_runtime_does():
    """A job found Finished by the workflow's Choice gets the Terminated status of the runtime's mapping."""
    states = definition.states()
    found = {}
    for state in states.values():
        for rule in _choice_rules(state.get("Choices", [])):
            # (a rule inside an And has no Next: FinishedNOK with a retry due leads to the next run, not an end)
            if ("Next" in rule and rule.get("Variable", "").endswith(".status.S")
                    and rule["StringEquals"] in statuses.TERMINATED_AFTER):
                found[rule["StringEquals"]] = states[rule["Next"]]["Parameters"]["status"]
    assert found == statuses.TERMINATED_AFTER


def test_the_workflow_tags_instances_with_the_runtime_tag_keys():
    """The tag keys CreateFleet writes are the ones the clean-up and the IAM condition look for."""
    tags = [tag["Key"] for spec in definition.states()["RequestCapacity"]["Parameters"]["TagSpecifications"]
            for tag in spec["Tags"]]
    assert {statuses.TAG_JOB, statuses.TAG_STACK} <= set(tags)
    assert {key for key in re.findall(r'"Key": "(jobscheduler:[^"]*)"', definition.text())} == {
        statuses.TAG_JOB, statuses.TAG_STACK}


# --- the runtime's own writes ----------------------------------------------------------------------------------


class _Unknown(Exception):
    """An expression the reading does not follow."""


def _statuses_of(node: ast.expr, assigned: dict[str, ast.expr]) -> frozenset[str]:
    """The statuses an expression built from the statuses' names stands for (both branches of an if)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("jobs", "statuses"):
        return _named(node.attr)
    if isinstance(node, ast.Name):
        if node.id in assigned:
            return _statuses_of(assigned[node.id], assigned)
        return _named(node.id)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return frozenset().union(*(_statuses_of(e, assigned) for e in node.elts))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("tuple", "sorted",
                                                                                            "frozenset"):
        return _statuses_of(node.args[0], assigned)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _statuses_of(node.left, assigned) | _statuses_of(node.right, assigned)
    if isinstance(node, ast.IfExp):
        return _statuses_of(node.body, assigned) | _statuses_of(node.orelse, assigned)
    raise _Unknown(ast.unparse(node))


def _named(name: str) -> frozenset[str]:
    value = getattr(statuses, name, None)
    if isinstance(value, str) and value in statuses.STATUSES:
        return frozenset({value})
    if value is statuses.TERMINAL:
        return statuses.TERMINAL
    raise _Unknown(name)


def runtime_writes() -> Iterator[tuple[str, frozenset[str], frozenset[str] | None]]:
    """(where, guard, statuses written or None if not read) for each ``store.update`` call in the runtime."""
    for path in sorted(RUNTIME.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            assigned = {t.id: n.value for n in ast.walk(function) if isinstance(n, ast.Assign)
                        for t in n.targets if isinstance(t, ast.Name)}
            assigned |= {n.target.id: n.value for n in ast.walk(function) if isinstance(n, ast.AnnAssign)
                         and isinstance(n.target, ast.Name) and n.value is not None}
            for call in [n for n in ast.walk(function) if isinstance(n, ast.Call)]:
                func = call.func
                is_update = (isinstance(func, ast.Attribute) and func.attr == "update"
                             and isinstance(func.value, ast.Name) and func.value.id == "store") or (
                    path.name == "store.py" and isinstance(func, ast.Name) and func.id == "update")
                if not is_update:
                    continue
                where = f"{path.relative_to(RUNTIME)}:{call.lineno}"
                keywords = {k.arg: k.value for k in call.keywords}
                allowed = _statuses_of(keywords["allowed_from"], assigned) if "allowed_from" in keywords else None
                refused = _statuses_of(keywords["not_in"], assigned) if "not_in" in keywords else frozenset()
                guard = (allowed if allowed is not None else frozenset(statuses.STATUSES)) - refused
                values = call.args[1] if len(call.args) > 1 else None
                if isinstance(values, ast.Name):
                    values = assigned.get(values.id, values)
                written: frozenset[str] | None = None  # values built elsewhere: store.update checks them
                if isinstance(values, ast.Dict):
                    status = [v for k, v in zip(values.keys, values.values, strict=True)
                              if isinstance(k, ast.Constant) and k.value == "status"]
                    try:
                        written = _statuses_of(status[0], {}) if status else frozenset()
                    except _Unknown:
                        written = None  # a status from a parameter: store.update checks it when it runs
                yield where, guard, written


def test_every_guard_the_runtime_writes_with_is_made_of_the_table_statuses():
    """Every ``allowed_from`` and ``not_in`` in the runtime reads as a set of the table's statuses, and each
    status a call writes literally may be reached from every status its guard lets through."""
    writes = list(runtime_writes())
    assert len(writes) >= 6, writes  # the cancel, the callback, the interruption, the end, the cost ...
    refused = [f"{where}: {old} -> {new}" for where, guard, written in writes for new in written or ()
               for old in guard if not statuses.may_move(old, new)]
    assert refused == []
    assert [where for where, guard, written in writes if written and guard == set(statuses.STATUSES)] == []


# --- the copies that cannot import the runtime -------------------------------------------------------------


def test_the_client_and_the_api_document_name_the_same_statuses():
    """The client installs without the runtime: its copy of the terminal statuses, its colours and the
    OpenAPI document's enums must match the table."""
    assert client.TERMINAL == statuses.TERMINAL
    assert set(render.STATUS_STYLE) == set(statuses.STATUSES)
    schemas = json.loads(OPENAPI.read_text())["components"]["schemas"]
    assert schemas["Status"]["enum"] == list(statuses.STATUSES)
    assert schemas["Callback"]["properties"]["status"]["enum"] == list(statuses.TERMINATED_AFTER)
