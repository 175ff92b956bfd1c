"""The committed OpenAPI document is valid, served, and describes exactly the app's routes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from openapi_spec_validator import validate

SPEC_PATH = Path(__file__).resolve().parent.parent / "runtime" / "chalicelib" / "openapi.json"
INSTANCE_ROUTES = {"/jobs/{}/callback", "/jobs/{}/heartbeat"}


def spec() -> dict:
    return dict(json.loads(SPEC_PATH.read_text()))


def shape(path: str) -> str:
    """A path with its parameter names erased ({job_id} and {jobId} are the same route)."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def app_routes() -> dict[tuple[str, str], object]:
    from app import app

    return {(shape(path), method.lower()): entry for path, methods in app.routes.items()
            for method, entry in methods.items()}


def test_document_is_valid_openapi():
    """openapi-spec-validator accepts it."""
    validate(spec())


def test_document_describes_exactly_the_routes():
    """Every route is documented and every documented operation is a route."""
    documented = {(shape(path), method) for path, item in spec()["paths"].items() for method in item}
    assert documented == set(app_routes())


def test_document_says_who_may_call_each_route():
    """Instance routes take the callback secret; every other route is IAM (SigV4) in the app and the document."""
    document = spec()
    for (path, method), entry in app_routes().items():
        operation = next(item[method] for p, item in document["paths"].items() if shape(p) == path)
        schemes = {name for s in operation.get("security", document["security"]) for name in s}
        if path in INSTANCE_ROUTES:
            assert schemes == {"callbackSecret"} and entry.authorizer is None, path
        else:
            assert schemes == {"sigv4"} and entry.authorizer is not None, path


def test_document_is_served(api):
    """GET /openapi.json returns the committed document."""
    response = api.http.get("/openapi.json")
    assert response.status_code == 200 and response.json_body == spec()
