"""A Query on a global secondary index reads one partition, in order, as DynamoDB does (a speed shim).

moto answers a Query on an index by sorting the whole table, keeping the
items of the asked partition, sorting those again and walking them from the
first: a page of 50 jobs by status costs as much as the table has items.
DynamoDB keeps each index partition sorted by its sort key and reads from
the page's start (``ExclusiveStartKey`` or the key condition's bound).

This shim keeps, per table and index, every partition as a sorted list of
its items' keys, in moto's own order (index sort key, then the table's
keys), updated on every write moto makes. A Query then hands moto's own
query code only the items it can reach: those of the partition from the
start position, inside the key condition's bounds, as many as ``Limit``
plus one (moto reads one item past the limit to know whether to return a
``LastEvaluatedKey``) or as many as fill its 1 MB page. moto's code does the
rest exactly as before: key condition, order, ``Limit``, the filter after
the limit, projection, ``ScannedCount``, ``LastEvaluatedKey``. Anything
this shim does not model (a local index, a multi-attribute key, the legacy
``QueryFilter``, a start key lacking a key attribute) takes moto's plain
path. Writes it cannot follow item by item (PartiQL, transactions, a table
or index change) mark the table's partitions stale: the next Query rebuilds
them once.

Checked against moto 5.2.5 (``moto_parity.TESTED_MOTO``); tests/test_moto_index.py
compares every answer with moto's plain path over randomised tables.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sortedcontainers import SortedKeyList

_ATTRIBUTE = "_jobscheduler_query_index"  # where a table keeps its partitions (copied with the table)
_lock = threading.RLock()
_local = threading.local()  # .reachable: (table, items) while a Query runs; .plain: the shim is off
answered = {"partition": 0, "plain": 0}  # how Queries on an index were answered (the tests read it)
# Backend calls that change items or indexes other than one item at a time through put/update/delete.
_STALE_AFTER = ("execute_statement", "batch_execute_statement", "execute_transaction", "transact_write_items",
                "update_table")


# A key condition's comparison as moto's parser passes it (the operator as written), by its API name.
_OPERATORS = {"=": "EQ", "<": "LT", "<=": "LE", ">": "GT", ">=": "GE"}


@functools.total_ordering
class _Top:
    """Greater than any key value: ``(v, TOP)`` sorts after every key whose index sort key is ``v``."""

    def __eq__(self, other: object) -> bool:
        return other is self

    def __lt__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0


TOP = _Top()


class Partitions:
    """One index's partitions: partition key value -> sorted (sort tuple, table key); table key -> its place."""

    def __init__(self, hash_attr: str, range_attr: str | None, table_keys: list[str]) -> None:
        self.hash_attr, self.range_attr, self.table_keys = hash_attr, range_attr, table_keys
        self.parts: dict[Any, SortedKeyList] = {}
        self.where: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]] = {}  # table key -> (partition, entry)

    def sort_tuple(self, attrs: dict[str, Any]) -> tuple[Any, ...] | None:
        """moto's order inside a partition: index sort key, table hash key, table range key (cast values)."""
        names = ([self.range_attr] if self.range_attr else []) + self.table_keys
        if any(name not in attrs for name in names):
            return None
        return tuple(attrs[name].cast_value for name in names)

    def place(self, key: tuple[Any, ...], item: Any) -> None:
        """Put the item stored under ``key`` (``None``: deleted) where its index key says, or nowhere."""
        old = self.where.pop(key, None)
        if old is not None:
            self.parts[old[0]].remove(old[1])
            if not self.parts[old[0]]:
                del self.parts[old[0]]
        # DynamoDB indexes only items that have every key attribute of the index.
        if item is None or self.hash_attr not in item.attrs:
            return
        order = self.sort_tuple(item.attrs)
        if order is None:
            return
        partition, entry = item.attrs[self.hash_attr], (order, key)
        self.parts.setdefault(partition, SortedKeyList(key=lambda e: e[0])).add(entry)
        self.where[key] = (partition, entry)


def _table_key(table: Any, item: Any) -> tuple[Any, ...]:
    return (item.hash_key, item.range_key) if table.range_key_attr else (item.hash_key,)


def _supported(table: Any, index: Any) -> tuple[str, str | None] | None:
    """The index's (hash, range) attribute names if this shim models it: a GSI with one key attribute of each kind."""
    if index not in (table.global_indexes or []):
        return None
    hashes = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    ranges = [k["AttributeName"] for k in index.schema if k["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(ranges) > 1:
        return None
    return hashes[0], (ranges[0] if ranges else None)


def _partitions(table: Any, index: Any) -> Partitions | None:
    """The index's partitions, built from every item if missing or stale (caller holds the lock)."""
    shape = _supported(table, index)
    if shape is None:
        return None
    store: dict[str, Partitions] = table.__dict__.setdefault(_ATTRIBUTE, {})
    if index.name not in store:
        table_keys = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        built = Partitions(shape[0], shape[1], table_keys)
        for item in _ORIGINAL["all_items"](table):
            built.place(_table_key(table, item), item)
        store[index.name] = built
    return store[index.name]


def _follow(table: Any, item: Any, key: tuple[Any, ...]) -> None:
    """After a write: re-place the item under ``key`` (``item`` as now stored, or ``None``) in every built index."""
    with _lock:
        for partitions in table.__dict__.get(_ATTRIBUTE, {}).values():
            partitions.place(key, item)


def mark_stale(table: Any) -> None:
    """Forget the table's partitions: the next Query rebuilds them from the items."""
    with _lock:
        table.__dict__.pop(_ATTRIBUTE, None)


def _bounds(partitions: Partitions, comparison: str | None, values: list[Any]) -> tuple[tuple[Any, ...], ...] | None:
    """(low, high) sort tuples around the items a sort key condition can match; ``None`` if not modelled."""
    low: tuple[Any, ...] = ()
    high: tuple[Any, ...] = (TOP,)
    if not comparison:
        return low, high
    if partitions.range_attr is None:
        return None
    casts = [v.cast_value for v in values]
    comparison = _OPERATORS.get(comparison, comparison.upper())
    if comparison == "EQ":
        return (casts[0],), (casts[0], TOP)
    if comparison in ("LT", "LE"):
        return low, ((casts[0],) if comparison == "LT" else (casts[0], TOP))
    if comparison in ("GT", "GE"):
        return ((casts[0], TOP) if comparison == "GT" else (casts[0],)), high
    if comparison == "BETWEEN":
        return (casts[0],), (casts[1], TOP)
    if comparison == "BEGINS_WITH" and isinstance(casts[0], str | bytes) and casts[0]:
        prefix = casts[0]
        # Everything with the prefix sorts before the prefix with its last character (or byte) raised by one.
        after: str | bytes | None
        if isinstance(prefix, bytes):
            after = prefix[:-1] + bytes([prefix[-1] + 1]) if prefix[-1] < 0xFF else None
        else:
            after = prefix[:-1] + chr(ord(prefix[-1]) + 1) if ord(prefix[-1]) < 0x10FFFF else None
        return (prefix,), ((after,) if after is not None else high)
    return None


def _reachable(table: Any, partitions: Partitions, partition: Any, bounds: tuple[tuple[Any, ...], ...],
               limit: int | None, start: dict[str, Any] | None, forward: bool) -> list[Any] | None:
    """The items moto's query can reach: from the start, inside the bounds, up to Limit + 1 or a full page."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import RESULT_SIZE_LIMIT

    entries = partitions.parts.get(partition)
    if entries is None:
        return []
    first, stop = entries.bisect_key_left(bounds[0]), entries.bisect_key_right(bounds[1])
    if start is not None:
        names = ([partitions.range_attr] if partitions.range_attr else []) + partitions.table_keys
        if any(name not in start for name in names):
            return None  # moto's own rules for a partial start key
        after = tuple(DynamoType(start[name]).cast_value for name in names)
        if forward:
            first = max(first, entries.bisect_key_right(after))
        else:
            stop = min(stop, entries.bisect_key_left(after))
    positions = range(first, stop) if forward else range(stop - 1, first - 1, -1)
    found, size = [], 0
    for position in positions:
        found.append(_item(table, entries[position][1]))
        size += found[-1].size()
        if (limit is not None and len(found) > limit) or size > RESULT_SIZE_LIMIT:
            return found
    # moto's plain path reads the partition's next item even past the key condition's bounds,
    # and answers with a LastEvaluatedKey when it has read Limit items and another follows:
    # that item is handed over too, so both paths give the same answer.
    beyond = max(stop, first) if forward else min(first, stop) - 1
    if limit is not None and len(found) == limit and 0 <= beyond < len(entries):
        found.append(_item(table, entries[beyond][1]))
    return found


def _item(table: Any, key: tuple[Any, ...]) -> Any:
    return table.items[key[0]][key[1]] if table.range_key_attr else table.items[key[0]]


def _query(original: Any) -> Any:
    @functools.wraps(original)
    def query(self: Any, hash_key: Any, range_comparison: str | None, range_objs: list[Any], limit: int | None,
              exclusive_start_key: dict[str, Any] | None, scan_index_forward: bool, projection_expressions: Any,
              index_name: str | None = None, consistent_read: bool = False, filter_expression: Any = None,
              hash_key_conditions: Any = None, range_key_conditions: Any = None, **filter_kwargs: Any) -> Any:
        args = (hash_key, range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward,
                projection_expressions, index_name, consistent_read, filter_expression)
        kwargs = {"hash_key_conditions": hash_key_conditions, "range_key_conditions": range_key_conditions,
                  **filter_kwargs}
        items = None
        if index_name and not filter_kwargs and not getattr(_local, "plain", False) \
                and len(hash_key_conditions or []) == 1 and len(range_key_conditions or []) <= 1:
            index = {i.name: i for i in self.all_indexes()}.get(index_name)
            with _lock:
                partitions = _partitions(self, index) if index is not None else None
                if partitions is not None and hash_key_conditions[0][0] == partitions.hash_attr:
                    bounds = _bounds(partitions, range_comparison, range_objs)
                    if bounds is not None:
                        try:
                            items = _reachable(self, partitions, hash_key_conditions[0][1], bounds, limit,
                                               exclusive_start_key, scan_index_forward)
                        except TypeError:  # a key value of another type than the index's: moto's own answer
                            items = None
        if items is None:
            answered["plain"] += bool(index_name)
            return original(self, *args, **kwargs)
        answered["partition"] += 1
        _local.reachable = (self, items)
        try:
            return original(self, *args, **kwargs)
        finally:
            _local.reachable = None

    return query


def _all_items(original: Any) -> Any:
    @functools.wraps(original)
    def all_items(self: Any) -> Any:
        reachable = getattr(_local, "reachable", None)
        if reachable is not None and reachable[0] is self:
            return list(reachable[1])
        return original(self)

    return all_items


_ORIGINAL: dict[str, Any] = {}


def install() -> None:
    """Patch moto's Table (query, all_items, put_item, delete_item) and backend (update_item and bulk changes)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    if _ORIGINAL:
        return
    _ORIGINAL.update(all_items=Table.all_items, query=Table.query, put_item=Table.put_item,
                     delete_item=Table.delete_item, update_item=DynamoDBBackend.update_item)
    put, delete, update = _ORIGINAL["put_item"], _ORIGINAL["delete_item"], _ORIGINAL["update_item"]

    def put_item(self: Any, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        item = put(self, item_attrs, *args, **kwargs)
        _follow(self, item, _table_key(self, item))
        return item

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        try:
            return delete(self, hash_key, range_key)
        finally:
            _follow(self, None, (hash_key, range_key) if self.range_key_attr else (hash_key,))

    def update_item(self: Any, table_name: str, key: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        from moto.core.exceptions import JsonRESTError

        try:
            table = self.get_table(table_name)
            hash_value, range_value = self.get_keys_value(table, key)
        except (JsonRESTError, KeyError):  # moto's update answers a bad table or key with its own error
            return update(self, table_name, key, *args, **kwargs)
        try:
            return update(self, table_name, key, *args, **kwargs)
        finally:
            # Whatever happened (an update can fail half applied), the item is indexed as it now is.
            stored = table.items.get(hash_value)
            current = stored.get(range_value) if table.range_key_attr and stored is not None else stored
            _follow(table, current, (hash_value, range_value) if table.range_key_attr else (hash_value,))

    Table.query = _query(_ORIGINAL["query"])  # type: ignore[method-assign]
    Table.all_items = _all_items(_ORIGINAL["all_items"])  # type: ignore[method-assign]
    Table.put_item = functools.wraps(put)(put_item)  # type: ignore[method-assign]
    Table.delete_item = functools.wraps(delete)(delete_item)  # type: ignore[method-assign]
    DynamoDBBackend.update_item = functools.wraps(update)(update_item)  # type: ignore[method-assign]
    for name in _STALE_AFTER:
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, _then_stale(getattr(DynamoDBBackend, name)))


def _then_stale(original: Any) -> Any:
    @functools.wraps(original)
    def changed(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            for table in list(self.tables.values()):
                mark_stale(table)

    return changed


@contextmanager
def plain_queries() -> Iterator[None]:
    """In this thread, Queries take moto's plain path (to compare the shim's answers with moto's own)."""
    _local.plain = True
    try:
        yield
    finally:
        _local.plain = False
