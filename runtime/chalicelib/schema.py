"""Request bodies as the OpenAPI document defines them: one definition, compiled once.

The component schemas of ``openapi.json`` are the rules of a job body and a
callback body. They are compiled when this module is imported (a Lambda pays
it once, in its init phase), and the first rule a body breaks becomes a
:class:`JobError` that starts with the field: ``maxRuntimeSeconds: must be a
whole number from 1 to 2592000``. What a schema cannot say (one field against
another, the deployment's account, the rendered user data) stays in code.

The message is built from the rule that failed. A ``pattern``, ``const`` or
``not`` would read as a regex or a bare value, so the schema that carries one
has a ``description`` written to follow "must be": ``image: must be a Docker
image reference like ...``. ``format`` is an annotation, as in OpenAPI 3.1's
default dialect: a date-time's calendar is checked where it is parsed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import fastjsonschema

DOCUMENT: dict[str, Any] = json.loads(Path(__file__).with_name("openapi.json").read_text())
JOB_BODY = "JobBody"
CALLBACK = "Callback"
SCHEDULE_BODY = "ScheduleBody"
SCHEDULE_PATCH = "SchedulePatch"
# The word for each body's fields: "colour: is not a job field".
_NOUNS = {JOB_BODY: "job", CALLBACK: "callback", SCHEDULE_BODY: "schedule", SCHEDULE_PATCH: "schedule"}
_TYPES = {"string": "a string", "integer": "a whole number", "number": "a number", "object": "a JSON object",
          "array": "a list", "boolean": "true or false", "null": "null"}


class JobError(ValueError):
    """A request that cannot be accepted; ``field`` names the culprit (the API answers 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def component(name: str) -> dict[str, Any]:
    """The document's component schema ``name`` (``JobBody``, ``Callback``, ``Job`` ...)."""
    schema: dict[str, Any] = DOCUMENT["components"]["schemas"][name]
    return schema


def _compile(definition: dict[str, Any]) -> Any:
    # use_default=False: validation must not add defaults to the body (its hash is the idempotency check).
    return fastjsonschema.compile(definition, use_default=False, use_formats=False)


@functools.cache
def _body_validator(name: str) -> Any:
    # Compiled on first use, not at import: every function imports this module, few validate a body,
    # and compiling the four bodies' validators was a fifth of a cold start's import.
    # A $ref into the components resolves against the definition it sits in: the components travel along.
    return _compile({"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]})


def validate(name: str, body: Any) -> None:
    """Raise :class:`JobError` for the first rule of component ``name`` that ``body`` breaks."""
    try:
        _body_validator(name)(body)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise JobError(*_explain(exc, _NOUNS[name])) from None


def _explain(exc: fastjsonschema.JsonSchemaValueException, noun: str) -> tuple[str, str]:
    # fastjsonschema names the value "data", "data.env.NAME", "data.command[1]"; an object's own
    # rules (required, additionalProperties, propertyNames) name the object, and we name the key.
    path = (exc.name or "data").removeprefix("data").removeprefix(".")
    rule, value = exc.rule or "", exc.value
    definition: dict[str, Any] = exc.definition if isinstance(exc.definition, dict) else {}
    properties: dict[str, Any] = definition.get("properties", {})
    if rule == "required":
        missing = next((k for k in definition["required"] if k not in value), "")
        about = properties.get(missing, {}).get("description")
        return _join(path, missing), "is required" + (f" ({about})" if about else "")
    if rule == "additionalProperties":
        unknown = min(set(value) - set(properties), default="")
        noun = "job" if properties == component(JOB_BODY)["properties"] else noun  # a schedule's job template
        return _join(path, unknown), f"is not a {noun} field (allowed: {', '.join(sorted(properties))})"
    if rule == "propertyNames":
        names = definition["propertyNames"]
        validator = _validator(json.dumps(names))
        bad = next((k for k in value if not _accepts(validator, k)), "")
        return _join(path, bad), f"is not {names.get('description', 'an allowed name')}"
    return path or "body", _phrase(rule, definition)


def _phrase(rule: str, definition: dict[str, Any]) -> str:
    if rule == "type":
        return "must be " + " or ".join(_TYPES[t] for t in _types(definition))
    if rule == "enum":
        return "must be one of " + ", ".join(str(v) for v in definition["enum"])
    if rule in ("minimum", "maximum"):
        low, high = definition.get("minimum"), definition.get("maximum")
        number = "a whole number" if "integer" in _types(definition) else "a number"
        return f"must be {number} " + (f"from {low} to {high}" if None not in (low, high)
                                       else f"from {low}" if high is None else f"up to {high}")
    if rule in ("minLength", "maxLength"):
        return f"must be {_range(definition.get('minLength'), definition.get('maxLength'))} characters long"
    if rule in ("minItems", "maxItems"):
        return f"must be a list of {_range(definition.get('minItems'), definition.get('maxItems'))} items"
    if rule == "minProperties":
        return f"must hold at least {definition['minProperties']} field"
    if rule == "maxProperties":
        return f"may hold at most {definition['maxProperties']} entries"
    if rule == "uniqueItems":
        return "must not list an item twice"
    if "description" in definition and rule in ("pattern", "const", "not"):
        return f"must be {definition['description']}"
    return f"breaks the schema's {rule} rule ({definition.get(rule)!r})"


def _types(definition: dict[str, Any]) -> list[str]:
    kind = definition.get("type", [])
    return kind if isinstance(kind, list) else [kind]


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@functools.lru_cache(maxsize=8)
def _validator(definition: str) -> Any:
    # Only on the error path: fastjsonschema names the object whose key a propertyNames rule refused.
    return _compile(json.loads(definition))


def _accepts(validator: Any, value: Any) -> bool:
    try:
        validator(value)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True
