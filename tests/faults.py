"""Fault injection into moto's backends: the emulated AWS misbehaves, our code stays untouched.

Wrapping the backend (not our code) means the workflow and the runtime meet a
failing AWS exactly as they would in production: through their clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.dynamodb.models import DynamoDBBackend
from moto.ec2.exceptions import EC2ClientError, InvalidInstanceIdError
from moto.ec2.models import EC2Backend
from moto.ec2.models.fleets import Fleet
from moto.ec2.responses.fleets import Fleets

# Names in Faults.calls of the faults that are not a plain failing call.
NO_SPOT_CAPACITY = "CreateFleet.NoSpotCapacity"
FLEET_ERRORS = "CreateFleet.Errors"
NOT_VISIBLE_YET = "DescribeInstanceStatus.NotFound"
SPOT_ABOVE_CAP = "CreateFleet.SpotMaxPriceTooLow"


class Faults:
    """Makes chosen backend calls fail a number of times, or answer 'no capacity'."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        # How often each fault fired, by name: "DynamoDBBackend.update_item", NO_SPOT_CAPACITY, ...
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def fail(self, target: type, method: str, times: int = 10**6,
             when: Callable[..., bool] = lambda *a, **k: True) -> str:
        """The next ``times`` calls of ``target.method`` matching ``when`` raise a server error.

        Returns the fault's name in :attr:`calls` (``"DynamoDBBackend.update_item"``).
        """
        original = getattr(target, method)
        state = {"left": times}
        key = f"{target.__name__}.{method}"

        def failing(backend: Any, *args: Any, **kwargs: Any) -> Any:
            if state["left"] > 0 and when(*args, **kwargs):
                state["left"] -= 1
                self._count(key)
                raise _server_error(target)
            return original(backend, *args, **kwargs)

        setattr(target, method, failing)
        self._undo.append(lambda: setattr(target, method, original))
        return key

    def no_spot_capacity(self) -> None:
        """CreateFleet returns no Spot instance, as AWS does when the pools are empty (counted per request)."""
        original = Fleet.create_spot_requests

        def none_available(fleet: Any, weight_to_add: float) -> list[Any]:
            self._count(NO_SPOT_CAPACITY)
            return []

        Fleet.create_spot_requests = none_available  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(Fleet, "create_spot_requests", original))

    def no_capacity(self) -> None:
        """CreateFleet returns no instance at all, Spot or on-demand."""
        self.no_spot_capacity()
        original = Fleet.create_on_demand_requests
        Fleet.create_on_demand_requests = lambda fleet, weight_to_add: None  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(Fleet, "create_on_demand_requests", original))

    def fleet_errors(self, *errors: tuple[str, str], times: int = 10**6) -> None:
        """The next ``times`` CreateFleet calls launch nothing and answer these (code, message) in ``Errors``.

        An instant fleet reports every launch failure so, capacity or not; moto never does.
        """
        respond, spot, on_demand = Fleets.create_fleet, Fleet.create_spot_requests, Fleet.create_on_demand_requests
        state = {"left": times}
        refusing = threading.local()

        def create_fleet(response: Any) -> Any:
            if state["left"] <= 0:
                return respond(response)
            state["left"] -= 1
            self._count(FLEET_ERRORS)
            refusing.on = True
            try:
                result = respond(response)
            finally:
                refusing.on = False
            result.result["Errors"] = [{"ErrorCode": code, "ErrorMessage": message, "Lifecycle": "spot"}
                                       for code, message in errors]
            return result

        def launch(original: Any) -> Any:
            return lambda fleet, weight: [] if getattr(refusing, "on", False) else original(fleet, weight)

        Fleets.create_fleet = create_fleet  # type: ignore[method-assign]
        Fleet.create_spot_requests = launch(spot)  # type: ignore[method-assign]
        Fleet.create_on_demand_requests = launch(on_demand)  # type: ignore[method-assign]
        self._undo += [lambda: setattr(Fleets, "create_fleet", respond),
                       lambda: setattr(Fleet, "create_spot_requests", spot),
                       lambda: setattr(Fleet, "create_on_demand_requests", on_demand)]

    def spot_market(self, price: str) -> list[dict[str, Any]]:
        """Spot costs ``price`` USD/h: a Spot request whose every override caps MaxPrice below it launches
        nothing and answers SpotMaxPriceTooLow in ``Errors``, as EC2 does; any other request is served.

        Returns the list that collects each CreateFleet request's (capacity type, overrides).
        """
        respond, spot = Fleets.create_fleet, Fleet.create_spot_requests
        seen: list[dict[str, Any]] = []
        refusing = threading.local()

        def create_fleet(response: Any) -> Any:
            kind = response._get_param("TargetCapacitySpecification", {}).get("DefaultTargetCapacityType")
            overrides = [o for c in response._get_param("LaunchTemplateConfigs", []) for o in c.get("Overrides", [])]
            seen.append({"type": kind, "overrides": overrides})
            caps = [o.get("MaxPrice") for o in overrides]
            if kind != "spot" or not caps or any(c is None or float(c) >= float(price) for c in caps):
                return respond(response)
            self._count(SPOT_ABOVE_CAP)
            refusing.on = True
            try:
                result = respond(response)
            finally:
                refusing.on = False
            result.result["Errors"] = [{"ErrorCode": "SpotMaxPriceTooLow", "Lifecycle": "spot",
                                        "ErrorMessage": f"Your Spot request price of {min(caps)} is lower than the "
                                                        f"minimum required Spot request fulfillment price of {price}."}]
            return result

        Fleets.create_fleet = create_fleet  # type: ignore[method-assign]
        Fleet.create_spot_requests = (  # type: ignore[method-assign]
            lambda fleet, weight: [] if getattr(refusing, "on", False) else spot(fleet, weight))
        self._undo += [lambda: setattr(Fleets, "create_fleet", respond),
                       lambda: setattr(Fleet, "create_spot_requests", spot)]
        return seen

    def not_visible_yet(self, times: int) -> None:
        """The next ``times`` DescribeInstanceStatus calls answer InvalidInstanceID.NotFound.

        EC2 is eventually consistent: right after a launch it may not know the instance yet.
        """
        original = EC2Backend.describe_instance_status
        state = {"left": times}

        def describe(backend: Any, instance_ids: list[str], *args: Any, **kwargs: Any) -> Any:
            if state["left"] > 0 and instance_ids:
                state["left"] -= 1
                self._count(NOT_VISIBLE_YET)
                raise InvalidInstanceIdError(instance_ids)
            return original(backend, instance_ids, *args, **kwargs)

        EC2Backend.describe_instance_status = describe  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(EC2Backend, "describe_instance_status", original))

    def wait_fired(self, key: str, times: int = 1, timeout: float = 30) -> None:
        """Wait until the fault ``key`` has fired ``times`` times (the workflow meets it in its own thread)."""
        deadline = time.monotonic() + timeout
        while self.calls.get(key, 0) < times:
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} fired {self.calls.get(key, 0)} times in {timeout} s, expected {times}")
            time.sleep(0.05)

    def clear(self) -> None:
        """AWS behaves again."""
        while self._undo:
            self._undo.pop()()

    def _count(self, key: str) -> None:
        with self._lock:
            self.calls[key] = self.calls.get(key, 0) + 1


def _server_error(target: type) -> Exception:
    if target is DynamoDBBackend:
        return JsonRESTError("InternalServerError", "injected fault")
    if target in (EC2Backend, Fleet):
        return EC2ClientError("InternalError", "injected fault")
    return JsonRESTError("ServiceUnavailable", "injected fault")


@contextmanager
def injected() -> Iterator[Faults]:
    """A fault injector that always undoes itself."""
    faults = Faults()
    try:
        yield faults
    finally:
        faults.clear()


def update_of(job_field: str) -> Callable[..., bool]:
    """A ``when`` for DynamoDB ``update_item`` calls that write ``job_field`` (by name or placeholder)."""
    def matches(*args: Any, **kwargs: Any) -> bool:
        expression = kwargs.get("update_expression") or (args[2] if len(args) > 2 else "")
        names = kwargs.get("expression_attribute_names") or (args[3] if len(args) > 3 else {}) or {}
        return job_field in (expression or "") or job_field in names.values()
    return matches
