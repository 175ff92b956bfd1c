"""Check the workflow's aws-sdk tasks against AWS SDK service models a year old.

Step Functions validates an aws-sdk Task's ``Parameters`` against its own copy
of each service's SDK model when a state machine is created, and refuses
members it does not know (``SCHEMA_VALIDATION_FAILED: The field ... is not
supported by Step Functions``). Its copy lags behind the newest SDKs, so the
workflow must use only members that have existed for a while: this module
checks every aws-sdk Task against botocore's service models of ``RELEASE``
(botocore's member names are the ones Step Functions uses: ``InstanceIds``,
not the wire name ``InstanceId``).

Checked: each Task's service and operation exist; its ``Parameters`` name only
members of the operation's input (``Key.$`` counts as ``Key``), give every
required member, and give static values of the member's type and enum (a
value from a path can only be checked by name; an intrinsic function by the
type it returns); each path the definition reads from a task's result
(``ResultSelector``, and later reads under the task's ``ResultPath``) names
members of the operation's output.

The models live in ``sdk_models/`` as a small extract: only the shapes the
definition touches (each structure with all its member names, so an unknown
member is still found). After changing the definition, regenerate it with

    pip download botocore==1.40.0 --no-deps -d /tmp/botocore
    python -m tests.sdk_model /tmp/botocore/botocore-1.40.0-py3-none-any.whl
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# botocore 1.40.0 was released on 2025-07-31: its models are more than a year old.
RELEASE = "1.40.0"
EXTRACT = Path(__file__).resolve().parent / "sdk_models" / f"botocore-{RELEASE}.json"
_RESOURCE = re.compile(r"arn:aws:states:::aws-sdk:([a-z0-9]+):(\w+)(\.waitForTaskToken)?")
# Paths into the state's data ($.a.b[0]); $$. is the context object and is left alone.
_PATH = re.compile(r"(?<![$\w])\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[(?:\d+|\*)\])+)")
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\*)\]")
# What each intrinsic function returns, as a shape type ("any": unknown).
_INTRINSIC_TYPES = {
    "States.Format": "string", "States.JsonToString": "string", "States.UUID": "string",
    "States.Hash": "string", "States.Base64Encode": "string", "States.Base64Decode": "string",
    "States.Array": "list", "States.ArrayPartition": "list", "States.ArrayRange": "list",
    "States.ArrayUnique": "list", "States.StringSplit": "list", "States.ArrayLength": "integer",
    "States.MathAdd": "integer", "States.MathRandom": "integer", "States.ArrayContains": "boolean",
    "States.JsonMerge": "structure", "States.ArrayGetItem": "any", "States.StringToJson": "any",
}
_STATIC_TYPES: dict[str, tuple[type, ...]] = {
    "structure": (dict,), "map": (dict,), "list": (list,), "string": (str,), "blob": (str,),
    "integer": (int,), "long": (int,), "boolean": (bool,), "double": (int, float), "float": (int, float),
    "timestamp": (str, int, float),
}
# Fields whose value is a path the state reads (besides "*.$" keys and Choice comparators "...Path").
_PATH_FIELDS = ("Variable", "TimestampPath", "SecondsPath", "TimeoutSecondsPath", "HeartbeatSecondsPath",
                "ItemsPath", "InputPath", "OutputPath")


@dataclass
class Task:
    """One aws-sdk Task state of the definition."""

    state: str
    service: str
    operation: str
    parameters: dict[str, Any]
    result_selector: dict[str, Any] | None
    result_path: str | None
    callback: bool  # .waitForTaskToken: the result is what SendTaskSuccess sent, not the SDK's answer


@dataclass
class Models:
    """Service models: ``{service: {"operations": {name: {"input", "output"}}, "shapes": {...}}}``."""

    services: dict[str, Any]
    release: str = RELEASE
    visited: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = EXTRACT) -> Models:
        """The committed extract."""
        data = json.loads(path.read_text())
        return cls(data["services"], data["release"])

    def operation(self, service: str, name: str) -> dict[str, str] | None:
        """The operation's input and output shape names, or None if the model has no such operation."""
        ops = self.services.get(service, {}).get("operations", {})
        return ops.get(name)  # type: ignore[no-any-return]

    def shape(self, service: str, name: str) -> dict[str, Any]:
        """A shape by name (recorded as visited, for the extract)."""
        self.visited.setdefault(service, set()).add(name)
        shapes = self.services[service]["shapes"]
        if name not in shapes:
            raise LookupError(f"{service} shape {name} is not in the extract {EXTRACT.name}: regenerate it "
                              "(see tests/sdk_model.py)")
        return shapes[name]  # type: ignore[no-any-return]


def aws_sdk_tasks(states: dict[str, Any]) -> list[Task]:
    """Every aws-sdk Task of the definition."""
    tasks = []
    for name, state in states.items():
        match = _RESOURCE.fullmatch(state.get("Resource", ""))
        if state.get("Type") != "Task" or not match:
            continue
        action = match[2]
        tasks.append(Task(name, match[1], action[0].upper() + action[1:], state.get("Parameters", {}),
                          state.get("ResultSelector"), state.get("ResultPath", "$"), bool(match[3])))
    return tasks


def check(states: dict[str, Any], models: Models) -> list[str]:
    """Every problem Step Functions' (year-old) SDK model would have with the definition's aws-sdk tasks."""
    problems: list[str] = []
    tasks = aws_sdk_tasks(states)
    for task in tasks:
        operation = models.operation(task.service, task.operation)
        if operation is None:
            problems.append(f"{task.state}: {task.service} has no operation {task.operation} in botocore "
                            f"{models.release}")
            continue
        problems += _check_value(models, task.service, operation["input"], task.parameters,
                                 f"{task.state}: Parameters")
        if task.result_selector is not None and not task.callback:
            for where, path in _reads(task.result_selector, "ResultSelector"):
                problems += _check_read(models, task, operation["output"], path, f"{task.state}: {where}")
    problems += _check_result_reads(states, tasks, models)
    return problems


def _check_value(models: Models, service: str, shape_name: str, value: Any, where: str) -> list[str]:
    shape = models.shape(service, shape_name)
    kind = shape["type"]
    if not isinstance(value, _STATIC_TYPES[kind]) or (isinstance(value, bool) and kind != "boolean"):
        return [f"{where}: {json.dumps(value)[:60]} is not a {kind} ({shape_name})"]
    if kind == "string" and "enum" in shape and value not in shape["enum"]:
        return [f"{where}: {value!r} is not one of {shape_name}'s values {shape['enum']}"]
    if kind == "list":
        return [p for i, item in enumerate(value)
                for p in _check_value(models, service, shape["member"]["shape"], item, f"{where}[{i}]")]
    if kind == "map":
        return [p for key, item in value.items()
                for p in _check_member(models, service, shape["value"]["shape"], key, item, f"{where}.{key}")]
    if kind != "structure":
        return []
    problems = []
    given = {key.removesuffix(".$") for key in value}
    for key, item in value.items():
        member = shape["members"].get(key.removesuffix(".$"))
        if member is None:
            problems.append(f"{where}: {key.removesuffix('.$')} is not a member of {shape_name} in botocore "
                            f"{models.release}")
            continue
        problems += _check_member(models, service, member["shape"], key, item, f"{where}.{key}")
    problems += [f"{where}: required member {name} of {shape_name} is missing"
                 for name in shape.get("required", []) if name not in given]
    return problems


def _check_member(models: Models, service: str, shape_name: str, key: str, item: Any, where: str) -> list[str]:
    if not key.endswith(".$"):
        return _check_value(models, service, shape_name, item, where)
    # From a path: only the name can be checked. From an intrinsic function: the type it returns.
    returns = _INTRINSIC_TYPES.get(item.split("(", 1)[0].strip(), "any") if "(" in item else "any"
    kind = models.shape(service, shape_name)["type"]
    if returns not in ("any", kind) and not (returns == "integer" and kind in ("long", "double", "float")):
        return [f"{where}: {item.split('(', 1)[0]} returns a {returns}, {shape_name} is a {kind}"]
    return []


def _reads(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(where, path) for each path a payload template or field reads."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "ResultPath":  # where a result is written, not read
                continue
            if isinstance(item, str) and (key.endswith(".$") or key in _PATH_FIELDS or key.endswith("Path")):
                yield from ((f"{where}.{key}", m.group(0)) for m in _PATH.finditer(item))
            else:
                yield from _reads(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _reads(item, f"{where}[{i}]")


def _steps(path: str) -> list[str]:
    return [m[1] or f"[{m[2]}]" for m in _STEP.finditer(path)]


def _check_read(models: Models, task: Task, shape_name: str, path: str, where: str) -> list[str]:
    """A path into the task's raw result."""
    shape_at = _walk(models, task.service, shape_name, _steps(path))
    return [] if shape_at is not None else [
        f"{where}: {path} is not in {task.operation}'s result ({shape_name}) in botocore {models.release}"]


def _walk(models: Models, service: str, shape_name: str, steps: list[str]) -> str | None:
    """The shape at the end of the steps, or None if a step names nothing."""
    for step in steps:
        shape = models.shape(service, shape_name)
        if step.startswith("["):
            if shape["type"] != "list":
                return None
            shape_name = shape["member"]["shape"]
        elif shape["type"] == "structure" and step in shape["members"]:
            shape_name = shape["members"][step]["shape"]
        elif shape["type"] == "map":
            shape_name = shape["value"]["shape"]
        else:
            return None
    return shape_name


def _check_result_reads(states: dict[str, Any], tasks: list[Task], models: Models) -> list[str]:
    """Reads under a task's ResultPath, anywhere in the definition, must name members of its result.

    A Pass state that copies part of a result elsewhere (``"first.$": "$.fleet.Errors[0]"``) is followed:
    reads of the copy are checked as reads of the result.
    """
    writers = [t for t in tasks if t.result_path and t.result_path != "$" and not t.callback
               and models.operation(t.service, t.operation)]
    copies = {s["ResultPath"]: s["Parameters"] for s in states.values()
              if s.get("Type") == "Pass" and isinstance(s.get("Parameters"), dict)
              and s.get("ResultPath") not in (None, "$")}
    problems = []
    for name, state in states.items():
        for where, read in _reads({k: v for k, v in state.items() if k != "ResultSelector"}, name):
            for path in _through_copies(read, copies):
                mine = [t for t in writers if _under(path, t.result_path or "")]
                if mine and not any(_resolves(models, t, path[len(t.result_path or ""):]) for t in mine):
                    problems.append(f"{where}: {read} names nothing in the result "
                                    f"{' or '.join(f'{t.state} ({t.operation})' for t in mine)} stores there "
                                    f"(botocore {models.release})")
    return problems


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _through_copies(path: str, copies: dict[str, dict[str, Any]], depth: int = 3) -> list[str]:
    """The path, and what it reads if it reads a Pass state's copy of another path."""
    found = [path]
    for prefix, template in copies.items():
        steps = _steps(path[len(prefix):]) if _under(path, prefix) and path != prefix else []
        source = template.get(f"{steps[0]}.$") if steps and not steps[0].startswith("[") else None
        if isinstance(source, str) and "(" not in source and depth:
            rest = "".join(s if s.startswith("[") else f".{s}" for s in steps[1:])
            found += _through_copies(source + rest, copies, depth - 1)
    return found


def _resolves(models: Models, task: Task, rest: str) -> bool:
    operation = models.operation(task.service, task.operation)
    assert operation is not None
    steps = _steps(rest)
    if task.result_selector is None:
        return _walk(models, task.service, operation["output"], steps) is not None
    if not steps:
        return True
    source = task.result_selector.get(f"{steps[0]}.$")
    if source is None:
        return steps[0] in task.result_selector and len(steps) == 1
    if "(" in source:  # an intrinsic function's value: only the value itself can be read
        return len(steps) == 1
    return _walk(models, task.service, operation["output"], _steps(source) + steps[1:]) is not None


# --- the extract ---------------------------------------------------------------------------------------------


def extract(wheel: Path, states: dict[str, Any]) -> dict[str, Any]:
    """The shapes ``check`` visits in the wheel's models, without documentation."""
    release = re.search(r"botocore-([\d.]+)-", wheel.name)
    services = {}
    with zipfile.ZipFile(wheel) as archive:
        for service in sorted({t.service for t in aws_sdk_tasks(states)}):
            services[service] = _service_model(archive, service)
    models = Models(services, release[1] if release else wheel.name)
    problems = check(states, models)
    kept: dict[str, Any] = {}
    for service, model in services.items():
        used = {t.operation for t in aws_sdk_tasks(states) if t.service == service}
        kept[service] = {
            "operations": {name: op for name, op in model["operations"].items() if name in used},
            "shapes": {name: _plain(model["shapes"][name]) for name in sorted(models.visited.get(service, ()))},
        }
    return {"release": models.release, "problems_at_extraction": problems, "services": kept}


def _service_model(archive: zipfile.ZipFile, service: str) -> dict[str, Any]:
    prefix = f"botocore/data/{service}/"
    latest = sorted({n[len(prefix):].split("/")[0] for n in archive.namelist() if n.startswith(prefix)})[-1]
    base = f"{prefix}{latest}/service-2.json"
    names = archive.namelist()
    raw = gzip.decompress(archive.read(base + ".gz")) if base + ".gz" in names else archive.read(base)
    model = json.loads(raw)
    operations = {name: {"input": op.get("input", {}).get("shape"), "output": op.get("output", {}).get("shape")}
                  for name, op in model["operations"].items()}
    return {"operations": operations, "shapes": model["shapes"]}


def _plain(shape: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in shape.items() if k in ("type", "required", "enum")}
    for key in ("member", "key", "value"):
        if key in shape:
            kept[key] = {"shape": shape[key]["shape"]}
    if "members" in shape:
        kept["members"] = {name: {"shape": ref["shape"]} for name, ref in shape["members"].items()}
    return kept


def main(argv: list[str]) -> int:
    """``python -m tests.sdk_model WHEEL``: write the extract for the definition as it is now."""
    from infra import definition

    if len(argv) != 1:
        print(__doc__)
        return 2
    data = extract(Path(argv[0]), definition.states())
    EXTRACT.parent.mkdir(parents=True, exist_ok=True)
    target = EXTRACT.with_name(f"botocore-{data['release']}.json")
    problems = data.pop("problems_at_extraction")
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
