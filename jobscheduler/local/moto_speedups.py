"""moto made faster where it does needless work: same behaviour, less CPU (and memory).

Applied with the parity shims (``moto_parity.apply``), never in AWS. Nothing
here changes what an AWS call answers; the local stack's start precision and
throughput depend on these (see the README's Performance section). Each shim
says what moto did on every use, and was checked against the moto releases
in ``moto_parity.TESTED_MOTO`` (>=5.2.5,<5.3); each has its entry in
docs/aws-vs-moto.md under its own name.
"""

from __future__ import annotations

import copy
import functools
import pickle
import zlib
from collections.abc import Callable
from typing import Any


def apply(credentials_of_the_workflow: Callable[[], dict[str, str]]) -> None:
    """Install every speed shim (``credentials_of_the_workflow``: what the shared workflow clients sign with)."""
    _definition_parsed_once()
    _service_clients_reused(credentials_of_the_workflow)
    _requests_routed_once_per_host()
    _paths_compiled_once()
    _requests_parsed_once()
    _index_queries_read_one_partition()
    _response_keys_found_once()
    _ended_histories_packed()
    _stream_records_packed()
    _offerings_read_per_region()
    _spot_prices_found_by_type()
    _service_models_loaded_once()
    _json_values_copied_fast()
    _query_parameters_indexed()


def _definition_parsed_once() -> None:
    # AWS validates a definition when the state machine is created and starts an
    # execution in milliseconds. moto parses the definition again, in pure Python,
    # for every execution: 0.1-0.4 s of CPU for our 49 states, all of it before
    # the first state. The parsed program keeps no execution's data (that lives
    # in the execution's environment, keyed by each component's heap key), so one
    # parse serves every execution of the same definition. Map and Parallel states
    # keep worker state on their components, so such definitions are not shared.
    import json
    import threading

    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    parse = ExecutionWorker._get_evaluation_entrypoint
    programs: dict[str, EvalComponent] = {}
    lock = threading.Lock()

    def entrypoint(self: Any) -> EvalComponent:
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            program = programs.get(definition)
            if program is None:
                program = parse(self)
                if _shareable(json.loads(definition)):
                    _assign_heap_keys(program)
                    programs[definition] = program
            return program

    ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign]


def _shareable(definition: Any) -> bool:
    if isinstance(definition, dict):
        if definition.get("Type") in ("Map", "Parallel"):
            return False
        return all(_shareable(value) for value in definition.values())
    if isinstance(definition, list):
        return all(_shareable(value) for value in definition)
    return True


def _assign_heap_keys(root: Any) -> None:
    # A component draws its heap key the first time it is asked; two executions
    # asking at once could each draw one. Draw them all now, under the lock.
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    pending = [root]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, EvalComponent):
            _ = value.heap_key
            pending.extend(vars(value).values())
        elif isinstance(value, list | tuple | set):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())


def _service_clients_reused(credentials_of_the_workflow: Callable[[], dict[str, str]]) -> None:
    # A workflow task's AWS call costs AWS no client set-up; moto builds a new
    # boto3 client for every call (3 ms for DynamoDB, 16 ms for EC2 here) and
    # ignores the state's credentials. botocore clients are thread-safe, so one
    # per region, service and credentials serves every call, with a connection pool as large
    # as a burst of executions (a pool of 10 would open and drop a connection
    # per call beyond the tenth).
    import importlib
    import sys
    import threading

    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    build = boto_client.boto_client_for
    clients: dict[tuple[Any, ...], Any] = {}
    sessions: list[boto3.session.Session] = []
    lock = threading.Lock()

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # As moto's own, but shared: its endpoint depends on whether moto intercepts calls or serves them.
        credentials = credentials_of_the_workflow()
        key = (region, service, botocore_stubber.enabled, moto_server_port(), *sorted(credentials.items()))
        with lock:
            if key not in clients:
                if not sessions:  # made on first use, reading through the one loader (see below)
                    sessions.append(boto3.session.Session(botocore_session=_botocore_session()))
                endpoint = {} if botocore_stubber.enabled else {"endpoint_url": f"http://localhost:{key[3]}"}
                clients[key] = sessions[0].client(  # type: ignore[call-overload]  # any service a task names
                    service, region_name=region, **credentials,
                    config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1},
                                  connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                                  read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                                  max_pool_connections=256),
                    **endpoint)
            return clients[key]

    # Each task module imported the function by name: replace it there too.
    service = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service"
    for name in ("state_task_service_aws_sdk", "state_task_service_dynamodb"):
        importlib.import_module(f"{service}.{name}")
    for module in list(sys.modules.values()):
        if getattr(module, "boto_client_for", None) is build:
            module.boto_client_for = client_for  # type: ignore[attr-defined]


def _requests_routed_once_per_host() -> None:
    # Every request to the emulator's endpoint is routed to a service by its host:
    # moto lists its own package directory (hundreds of stat calls) and tries
    # hundreds of URL patterns for each request, under one lock. The answer for a
    # host never changes, so it is worked out once.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    route = DomainDispatcherApplication.get_backend_for_host
    routes: dict[str | None, Any] = {}

    def backend_for_host(self: Any, host: str | None) -> Any:
        if host not in routes:
            routes[host] = route(self, host)
        return routes[host]

    DomainDispatcherApplication.get_backend_for_host = backend_for_host  # type: ignore[method-assign]


def _paths_compiled_once() -> None:
    # moto compiles every JSONPath again each time a state reads or writes one,
    # and each time EventBridge delivers an event to a target (jsonpath-ng builds
    # its parser tables per call): most of an execution's CPU in the local stack.
    # A compiled path is immutable, so each is compiled once.
    import functools

    import jsonpath_ng
    import jsonpath_ng.ext
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (jsonpath_ng, jsonpath_ng.ext, json_path, result_path):
        module.parse = functools.lru_cache(maxsize=4096)(module.parse)  # type: ignore[attr-defined]


def _requests_parsed_once() -> None:
    # Per request, moto lists the handler class's methods with inspect, and parses
    # an UpdateExpression twice (once to check its placeholders, once to apply
    # it): a third of the emulator's CPU when jobs run back to back. Neither
    # answer changes for the same class or text, and the parsed expression is
    # only read (validation works on a deep copy), so each is computed once.
    import functools

    from moto.core import responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    responses.method_names_from_class = functools.lru_cache(maxsize=None)(responses.method_names_from_class)
    parse = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make.__func__)
    UpdateExpressionParser.make = classmethod(lambda cls, text: parse(cls, text))  # type: ignore[arg-type]  # a cached copy of moto's own classmethod


def _index_queries_read_one_partition() -> None:
    # moto answers a Query on a global secondary index by sorting the whole table
    # and walking the asked partition from its first item: a page of 50 jobs by
    # status costs as much as the table is large. DynamoDB reads one partition,
    # in order, from the page's start. moto_index keeps each partition sorted and
    # hands moto's own query code only the items the page can reach.
    from jobscheduler.local import moto_index

    moto_index.install()


def _response_keys_found_once() -> None:
    # To serialise a response, moto asks six alias providers, for every attribute
    # of every object, under which names the object might hold it: a third of the
    # emulator's CPU when many executions run at once. The answer depends only on
    # the picker, the object's class (its Meta aliases and its name), the key and
    # the shape with its parent at that moment, so it is worked out once for each.
    # An object with aliases of its own (an instance-level Meta) is asked every time.
    import threading

    from moto.core.serialize import AttributePicker, XFormedAttributePicker

    lock = threading.Lock()
    for cls in (AttributePicker, XFormedAttributePicker):
        original = cls.__dict__["get_possible_keys"]
        found: dict[tuple[Any, ...], tuple[Any, Any, tuple[str, ...]]] = {}

        def get_possible_keys(self: Any, context: Any, __original: Any = original,
                              __found: dict[tuple[Any, ...], tuple[Any, Any, tuple[str, ...]]] = found) -> Any:
            if "Meta" in getattr(context.obj, "__dict__", ()):
                return __original(self, context)
            shape = context.shape
            parent = getattr(shape, "parent", None)
            key = (type(self), tuple(self.alias_providers), type(context.obj), context.key, id(shape), id(parent))
            entry = __found.get(key)
            # The shapes are kept in the entry, so their ids cannot be reused by others.
            if entry is None or entry[0] is not shape or entry[1] is not parent:
                entry = (shape, parent, tuple(__original(self, context)))
                with lock:
                    __found[key] = entry
            return entry[2]

        cls.get_possible_keys = get_possible_keys  # type: ignore[method-assign]


def _ended_histories_packed() -> None:
    # moto keeps every ended execution's history as Python objects: about 50 events
    # a job, each state's input and output a JSON string of its own, 130 KB of the
    # emulator's heap per finished job, the largest part of its growth. An ended
    # execution's history never changes again and is only read whole
    # (GetExecutionHistory copies it each time), so once the execution ends it is
    # kept pickled and compressed, and unpacked (a fresh copy, as moto's deepcopy
    # gave) when read. An event added after that (none is, today) unpacks it first.
    from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    read, add, ended = (EventManager.get_event_history, EventManager.add_event,
                        BaseExecutionWorkerCommunication.terminated)

    def unpack(manager: Any) -> None:  # under the manager's lock
        packed = manager.__dict__.pop("_packed", None)
        if packed is not None:
            manager._history_event_list.extend(_unpacked(packed))

    def get_event_history(self: Any) -> Any:
        with self._mutex:
            packed = self.__dict__.get("_packed")
        return read(self) if packed is None else _unpacked(packed)

    def add_event(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            unpack(self)
        return add(self, *args, **kwargs)

    def terminated(self: Any) -> None:
        ended(self)
        env = self.execution.exec_worker.env
        if env is not None:
            manager = env.event_manager
            with manager._mutex:
                if "_packed" not in manager.__dict__:
                    events = manager._history_event_list
                    manager._packed = _packed(events)
                    events.clear()

    EventManager.get_event_history = get_event_history  # type: ignore[method-assign]
    EventManager.add_event = add_event  # type: ignore[method-assign]
    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]


def _stream_records_packed() -> None:
    # moto keeps every record of a table's stream (DynamoDB keeps them 24 hours) as
    # nested dicts, the item's old and new images in full: about ten records and
    # 60 KB of the emulator's heap per job. A record never changes once written and
    # is only read whole (GetRecords, an event source mapping), so it is kept pickled
    # and compressed, and each read gets a fresh copy.
    from moto.dynamodb.models.table import StreamRecord

    build = StreamRecord.__init__

    def record(self: Any) -> Any:
        live = self.__dict__.get("_record")
        return live if live is not None else _unpacked(self.__dict__["_packed"])

    def set_record(self: Any, value: Any) -> None:
        self.__dict__["_record"] = value

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)  # writes and fills self.record (the live dict)
        self._packed = _packed(self.__dict__.pop("_record"))

    StreamRecord.record = property(record, set_record)  # type: ignore[assignment]  # a property in place of the attribute
    StreamRecord.__init__ = init  # type: ignore[method-assign]
    StreamRecord.to_json = record  # type: ignore[method-assign]


def _packed(value: Any) -> bytes:
    """``value`` pickled and compressed (fast level: packing is on every execution's and write's path)."""
    return zlib.compress(pickle.dumps(value, pickle.HIGHEST_PROTOCOL), 1)


def _unpacked(data: bytes) -> Any:
    """A fresh copy of what :func:`_packed` packed."""
    return pickle.loads(zlib.decompress(data))


def _offerings_read_per_region() -> None:
    # moto reads the instance type offerings of every region (30 regions, three location types: 90 files,
    # 45 MiB as Python objects) when its EC2 models are imported, and keeps them all for the life of the
    # process; a stack calls one region. Each region's offerings are now read the first time a call asks
    # for that region (as moto read them, with its LocationType added) and kept from then on; the regions
    # moto knows stay the same. Those read at import are dropped.
    import threading
    from collections.abc import Iterator, Mapping

    from moto.ec2.models import instance_types
    from moto.utilities.utils import load_resource

    folder = instance_types.offerings_path
    files = {location_type: {name.split(".")[0]: name for name in instance_types.listdir(
        instance_types.root / folder / location_type)} for location_type in instance_types.INSTANCE_TYPE_OFFERINGS}
    lock = threading.Lock()

    class OfferingsByRegion(Mapping[str, Any]):
        """One location type's offerings by region, each region read from moto's file when first asked for."""

        def __init__(self, location_type: str) -> None:
            self.location_type = location_type
            self.read: dict[str, Any] = {}

        def __getitem__(self, region: str) -> Any:
            with lock:
                if region not in self.read:
                    name = files[self.location_type][region]  # a region moto does not know: KeyError, as before
                    offerings = load_resource(f"ec2/{folder}/{self.location_type}/{name}")
                    for offering in offerings:
                        offering["LocationType"] = self.location_type
                    self.read[region] = offerings
                return self.read[region]

        def __iter__(self) -> Iterator[str]:
            return iter(files[self.location_type])

        def __len__(self) -> int:
            return len(files[self.location_type])

    for location_type in files:
        instance_types.INSTANCE_TYPE_OFFERINGS[location_type] = OfferingsByRegion(location_type)


def _spot_prices_found_by_type() -> None:
    # moto answers DescribeSpotPriceHistory by testing each availability-zone offering of the region (6,436
    # in us-east-1) against the call's filters and types; the runtime asks for one type in one zone when it
    # prices an attempt, and a burst of jobs asks hundreds of times. Each region's offerings are now grouped
    # by instance type once, keeping moto's order; a call that names its types tests only their offerings,
    # with moto's same tests. A call that names no type takes moto's own path.
    import heapq
    import threading

    from moto.ec2.models import instance_types
    from moto.ec2.models.spot_requests import SpotRequestBackend

    original = SpotRequestBackend.describe_spot_price_history
    grouped: dict[str, dict[Any, list[tuple[int, dict[str, Any]]]]] = {}  # by region
    lock = threading.Lock()

    def by_type(region: str) -> dict[Any, list[tuple[int, dict[str, Any]]]]:
        with lock:
            if region not in grouped:
                groups: dict[Any, list[tuple[int, dict[str, Any]]]] = {}
                offerings = instance_types.INSTANCE_TYPE_OFFERINGS["availability-zone"].get(region, [])
                for position, offering in enumerate(offerings):
                    groups.setdefault(offering.get("InstanceType"), []).append((position, offering))
                grouped[region] = groups
            return grouped[region]

    def matches(offering: dict[str, Any], filters: dict[str, list[str]]) -> bool:  # moto's own test
        for key, values in filters.items():
            if key == "availability-zone":
                found = offering.get("Location") in values
            elif key == "instance-type":
                found = offering.get("InstanceType") in values
            else:
                found = False
            if not found:
                return False
        return True

    @functools.wraps(original)
    def describe_spot_price_history(self: Any, instance_types_: list[str] | None = None,
                                    filters: Any = None) -> list[dict[str, Any]]:
        if not instance_types_ or not isinstance(filters, dict):
            return original(self, instance_types_, filters)
        groups = by_type(self.region_name)
        candidates = heapq.merge(*(groups.get(name, []) for name in dict.fromkeys(instance_types_)),
                                 key=lambda entry: entry[0])
        return [offering for _, offering in candidates if matches(offering, filters)]

    SpotRequestBackend.describe_spot_price_history = describe_spot_price_history  # type: ignore[method-assign,assignment]


def _service_models_loaded_once() -> None:
    # A botocore loader parses each model file once and keeps it; moto made a new loader each time it first
    # needed a service's model (for its responses and its errors), its backends asked a session of their own
    # for each service's regions (which loads the model too), and the workflow's clients loaded it again in
    # boto3's session: EC2's model, 22 MiB as Python objects, was held three times, botocore's endpoint data
    # twice. All three now read through _one_loader (the workflow's clients: see _service_clients_reused).
    import moto.core.utils as moto_utils
    from moto.core.base_backend import AccountSpecificBackend

    moto_utils.create_loader = _one_loader  # what _load_service_model calls
    AccountSpecificBackend.get_session()._session.register_component("data_loader", _one_loader())


@functools.cache
def _one_loader() -> Any:
    """moto's loader, with botocore's extras as well as moto's (moto's add error shapes only, botocore's
    paginator keys only): each model and endpoint file parsed once in this process."""
    from moto.core.loaders import create_loader

    loader = create_loader()
    loader.extras_types.append("sdk")
    return loader


def _botocore_session() -> Any:
    """A botocore session that reads through :func:`_one_loader`."""
    import botocore.session

    session = botocore.session.get_session()
    session.register_component("data_loader", _one_loader())
    return session


def _json_values_copied_fast() -> None:
    # The workflow interpreter copies a state's input, its result and the value of every JSONPath it reads
    # before each use, with copy.deepcopy (a memo and a type dispatch for every object): several times per
    # state, 9% of the instructions from a job's wake to its capacity request (callgrind). Those values are
    # JSON data, trees of dicts, lists and atoms that no two places share, so a copier that walks them as
    # such makes the same fresh tree, and hands anything else to copy.deepcopy. Only the modules whose
    # copies are of JSON values get it; the program's state and its history events keep copy.deepcopy.
    import types

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.component.common.string import string_expression
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service
    from moto.stepfunctions.parser.asl.eval import states

    fast = types.SimpleNamespace(deepcopy=json_copy, copy=copy.copy)
    for module in (states, string_expression, result_path, state_task_service):
        module.copy = fast  # type: ignore[attr-defined]  # the module's own name for copy


_ATOMS = frozenset({str, int, float, bool, type(None)})


def json_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A fresh copy of ``value``: dicts and lists rebuilt, JSON atoms kept, anything else by copy.deepcopy."""
    kind = type(value)
    if kind is dict:
        return {key: json_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_copy(item) for item in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value, memo)


def _query_parameters_indexed() -> None:
    # moto parses a query-protocol request (EC2's) by walking the operation's input shape, and before each
    # structure asks whether any parameter's name starts with the member's prefix: a scan of every parameter
    # (werkzeug's combined multi-dict builds a set of its names for each scan). A launch template's data has
    # some 40 members, each a structure or list of them, so CreateLaunchTemplateVersion and CreateFleet
    # made thousands of scans: 7% of a job's instructions from its wake to its capacity request. The parser
    # now reads a snapshot of the parameters (a plain dict, each name's first value, which is what the
    # multi-dict's get answers) with the names sorted, and answers "any name with this prefix?" by bisection.
    import bisect

    from moto.core.parse import QueryParser

    class Parameters(dict[str, Any]):
        """A request's parameters, each name's first value, and the names in order."""

        names: list[str]

        def has_name_starting(self, prefix: str) -> bool:
            at = bisect.bisect_left(self.names, prefix)
            return at < len(self.names) and self.names[at].startswith(prefix)

    parse, scan = QueryParser._do_parse, QueryParser._gonna_recurse

    @functools.wraps(parse)  # __wrapped__: moto's own, which scans (its parity test compares the two)
    def _do_parse(self: Any, request_dict: dict[str, Any], shape: Any) -> Any:
        values = request_dict["values"]
        if not isinstance(values, Parameters):
            snapshot = Parameters((name, values.get(name)) for name in values.keys())
            snapshot.names = sorted(snapshot)
            request_dict = {**request_dict, "values": snapshot}
        return parse(self, request_dict, shape)  # type: ignore[no-untyped-call]  # moto's parser is untyped

    def _gonna_recurse(self: Any, query_params: Any, prefix: str) -> bool:
        if isinstance(query_params, Parameters):
            return prefix != "" and not query_params.has_name_starting(prefix)
        return bool(scan(self, query_params, prefix))  # type: ignore[no-untyped-call]

    QueryParser._do_parse = _do_parse  # type: ignore[method-assign]
    QueryParser._gonna_recurse = _gonna_recurse  # type: ignore[method-assign]
