"""The projection's hot statements, compiled once: an UPDATE of some columns of one row, an
INSERT that skips a row already there, an INSERT that returns the new row's key, and a DELETE of
the rows whose column has one value.

Every step writes its run's row and a history row. Through the ORM, ``QuerySet.update`` and
``bulk_create`` build and compile their query on every call, which cost more CPU than the
database spent on the statements (a third of the library's own CPU per run in ``make bench``).
Here the SQL text is built once per model and set of columns, with Django's own quoting and
conflict syntax for the connection's database, and each call only converts its values
(``Field.get_db_prep_save``, as the ORM does) and executes. What the ORM would do differently
(expressions, model instances as values, fields with their own placeholders, a database
without conflict skipping or ``RETURNING``, a model whose save or delete signals have receivers,
a delete that cascades) goes through the ORM as before.

Two shortcuts more, each taken only where it cannot change what reaches the database:

* A value whose conversion is the identity is not converted: a ``str`` for Django's own text
  fields, an ``int`` for its integer fields and keys, a ``float`` for ``FloatField``, a ``bool``
  for ``BooleanField``, ``None`` for any of them and for ``DateTimeField`` (their
  ``get_db_prep_save`` returns these as they are, on every backend). A plain value of a
  ``JSONField`` without an encoder, on a backend that sends JSON as text, is ``json.dumps``-ed
  as the ORM would. An aware ``datetime`` for ``DateTimeField`` gets only the backend's
  adaptation (the field's own preparation returns it as it is). Other fields and values (naive
  datetimes, dates, subclasses, expressions) convert as the ORM does. The values are checked and
  converted in one pass, by their exact type first, since a write converts a dozen of them.
* On SQLite, the statement goes to the driver's connection rather than through Django's cursor
  wrapper (whose work per call, a cursor object and placeholder rewriting, cost as much as
  the statement), unless something watches Django's cursors: query logging (``DEBUG``) or an
  installed ``execute_wrapper`` (a tracer, a test counting queries). Errors are still Django's
  (``wrap_database_errors``), and the statement still runs on this thread's Django connection,
  in its transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.db import connections, models, router, transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import Model, signals
from django.db.models.constants import OnConflict
from django.db.models.deletion import Collector

T = TypeVar("T")

__all__ = ["delete_rows", "insert_ignoring_conflicts", "insert_row", "update_row"]

# (database alias, model, column names) -> the statement; None: use the ORM for these.
_updates: dict[tuple[str, type[Model], tuple[str, ...]], _Compiled | None] = {}
_inserts: dict[tuple[str, type[Model]], _Compiled | None] = {}
_returning: dict[tuple[str, type[Model]], _Compiled | None] = {}
_deletes: dict[tuple[str, type[Model], str], _Compiled] = {}


# Django's own field classes (exactly these, not subclasses), and the types of the values their
# conversion returns unchanged on every backend, besides None: ``str`` for text (and any str
# subclass, an enum member), exactly ``int``, ``float`` or ``bool`` for the others (``int()``
# turns an ``IntEnum`` into a plain int).
_TEXT = frozenset({str})
_UNCHANGED: dict[type[Any], frozenset[type[Any]]] = {
    **dict.fromkeys((models.CharField, models.TextField, models.SlugField, models.EmailField, models.URLField), _TEXT),
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
            models.AutoField,
            models.BigAutoField,
            models.SmallAutoField,
        ),
        frozenset({int}),
    ),
    models.FloatField: frozenset({float}),
    models.BooleanField: frozenset({bool}),
    models.DateTimeField: frozenset(),
}
_NONE = type(None)
_JSON_TYPES = frozenset({dict, list, str, int, float, bool})
_EMPTY_JSON = {dict: json.dumps({}), list: json.dumps([])}
_QMARK = re.compile(r"(?<!%)%s")


def _converter(alias: str, field: Any, *, lookup: bool) -> tuple[frozenset[type[Any]], Callable[[Any], Any]]:
    """``field.get_db_prep_save`` (``get_db_prep_value`` of the column a ``lookup`` compares
    with) for ``alias``: the types whose values it returns as they are (``params`` passes
    those on without a call), and a function that converts any other value as it does."""
    conn = connections[alias]
    target = field.target_field if field.is_relation else field
    unchanged = _UNCHANGED.get(type(target)) if type(field) in (type(target), models.ForeignKey) else None

    def convert(value: Any) -> Any:
        if lookup:
            return target.get_db_prep_value(value, conn)
        return field.get_db_prep_save(value, connection=conn)

    if (
        not lookup
        and type(field) is models.JSONField
        and field.encoder is None
        and getattr(type(conn.ops), "adapt_json_value", None) is BaseDatabaseOperations.adapt_json_value
    ):
        # What the ORM sends for a plain JSON value there: json.dumps of it (for the empty
        # dicts and lists most of a write's JSON columns get, the text it would produce).
        def dumps_or_convert(value: Any) -> Any:
            kind = type(value)
            if kind in _JSON_TYPES:
                return _EMPTY_JSON[kind] if not value and kind in _EMPTY_JSON else json.dumps(value)
            return convert(value)

        return frozenset(), dumps_or_convert
    if type(field) is models.DateTimeField:
        adapt = conn.ops.adapt_datetimefield_value

        # DateTimeField's own preparation returns an aware datetime as it is (it only makes a
        # naive one aware, with a warning): what remains is the backend's adaptation.
        def adapt_or_convert(value: Any) -> Any:
            return adapt(value) if type(value) is datetime and value.utcoffset() is not None else convert(value)

        return frozenset({_NONE}), adapt_or_convert
    if unchanged is None:
        return frozenset(), convert
    if unchanged is _TEXT:
        # A str subclass (an enum member) is returned as it is too.
        def text_or_convert(value: Any) -> Any:
            return value if isinstance(value, str) else convert(value)

        return unchanged | {_NONE}, text_or_convert
    return unchanged | {_NONE}, convert


class _Compiled:
    """One statement for one database: its SQL, and how to convert each parameter."""

    def __init__(self, alias: str, sql: str, fields: list[Any], *, lookup: bool = False) -> None:
        self.alias, self.sql, self.fields = alias, sql, fields
        self.converters = [_converter(alias, f, lookup=lookup) for f in fields]
        # The SQLite driver's placeholders; None elsewhere (always through Django's cursor).
        vendor = connections[alias].vendor
        self.qmark = _QMARK.sub("?", sql).replace("%%", "%") if vendor == "sqlite" else None

    def params(self, values: list[Any]) -> list[Any] | None:
        """``values`` converted as the ORM converts them; None if one of them is not a plain
        value (an expression, a model instance): the ORM's way is taken for those."""
        params = []
        # One pass, and no call at all for the values most columns get (a str, an int, None).
        for value, (kept, convert) in zip(values, self.converters, strict=True):
            if type(value) in kept:
                params.append(value)
            elif _plain(value):
                params.append(convert(value))
            else:
                return None
        return params

    def run(self, params: list[Any], read: Callable[[Any], T] | None = None) -> T | None:
        """Execute with ``params`` (from ``params()``) on this thread's connection; what
        ``read`` takes from the driver's cursor (its rowcount, its rows), if given."""
        conn = connections[self.alias]
        if self.qmark is None or conn.execute_wrappers or conn.queries_logged:
            with transaction.mark_for_rollback_on_error(self.alias), conn.cursor() as cursor:
                cursor.execute(self.sql, params)
                return None if read is None else read(cursor)
        try:
            # What Django's cursor checks before a statement, then the driver's own execute.
            conn.close_if_health_check_failed()
            conn.ensure_connection()
            conn.validate_thread_sharing()
            conn.validate_no_broken_transaction()
            with conn.wrap_database_errors:
                cursor = conn.connection.execute(self.qmark, params)
                try:
                    return None if read is None else read(cursor)
                finally:
                    cursor.close()
        except Exception as exc:
            # transaction.mark_for_rollback_on_error, inline: an error inside atomic() dooms it.
            if conn.in_atomic_block:
                conn.needs_rollback = True
                conn.rollback_exc = exc
            raise


def _rowcount(cursor: Any) -> int:
    return int(cursor.rowcount)


def _first_value(cursor: Any) -> Any:
    return cursor.fetchone()[0]


_PLAIN_TYPES = frozenset({str, int, float, bool, _NONE, dict, list})


def _plain(value: Any) -> bool:
    """A value the ORM would only convert: not an expression, not a model instance."""
    return type(value) in _PLAIN_TYPES or (not hasattr(value, "resolve_expression") and not isinstance(value, Model))


def _simple(field: Any) -> bool:
    return field.concrete and not hasattr(field, "get_placeholder") and not getattr(field, "generated", False)


def update_row(model: type[Model], pk: Any, fields: dict[str, Any]) -> int:
    """``model.objects.filter(pk=pk).update(**fields)``: how many rows it updated (0 or 1)."""
    alias = router.db_for_write(model)
    key = (alias, model, tuple(fields))
    if key not in _updates:
        meta = model._meta
        targets = [meta.get_field(name) for name in fields]
        if all(_simple(f) for f in targets):
            qn = connections[alias].ops.quote_name
            columns = ", ".join(f"{qn(f.column)} = %s" for f in targets)
            sql = f"UPDATE {qn(meta.db_table)} SET {columns} WHERE {qn(meta.pk.column)} = %s"
            _updates[key] = _Compiled(alias, sql, [*targets, meta.pk])
        else:
            _updates[key] = None
    compiled = _updates[key]
    params = None if compiled is None else compiled.params([*fields.values(), pk])
    if compiled is None or params is None:
        return model._base_manager.using(alias).filter(pk=pk).update(**fields)
    return compiled.run(params, _rowcount) or 0


def insert_ignoring_conflicts(obj: Model) -> None:
    """``bulk_create([obj], ignore_conflicts=True)``: insert the row unless a unique constraint
    says it is there already (then nothing changes)."""
    model = type(obj)
    alias = router.db_for_write(model)
    key = (alias, model)
    if key not in _inserts:
        conn = connections[alias]
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
        if conn.features.supports_ignore_conflicts and all(_simple(f) for f in fields):
            qn = conn.ops.quote_name
            sql = " ".join(
                part
                for part in (
                    conn.ops.insert_statement(on_conflict=OnConflict.IGNORE),
                    f"{qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)})",
                    f"VALUES ({', '.join(['%s'] * len(fields))})",
                    conn.ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None),
                )
                if part
            )
            _inserts[key] = _Compiled(alias, sql, fields)
        else:
            _inserts[key] = None
    compiled = _inserts[key]
    params = None if compiled is None else compiled.params([f.pre_save(obj, True) for f in compiled.fields])
    if compiled is None or params is None:
        model._base_manager.using(alias).bulk_create([obj], ignore_conflicts=True)
        return
    compiled.run(params)


def insert_row(obj: Model) -> None:
    """``obj.save()`` of a new row (``objects.create``): one INSERT that returns the primary key,
    which it sets on ``obj``.

    The ORM's way (``save`` with its signals, then the INSERT) is taken whenever it could
    differ: the model's ``pre_save``/``post_save`` have receivers, a field is not a plain column,
    or the database cannot return the key from the INSERT.
    """
    model = type(obj)
    alias = router.db_for_write(model)
    conn = connections[alias]
    key = (alias, model)
    if key not in _returning:
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
        returning, returning_params = (
            conn.ops.return_insert_columns([meta.auto_field])
            if meta.auto_field is not None and conn.features.can_return_columns_from_insert
            else ("", ())
        )
        if returning and not returning_params and all(_simple(f) for f in fields):
            qn = conn.ops.quote_name
            sql = (
                f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
                f"VALUES ({', '.join(['%s'] * len(fields))}) {returning}"
            )
            _returning[key] = _Compiled(alias, sql, fields)
        else:
            _returning[key] = None
    compiled = _returning[key]
    listened = signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
    params = None if compiled is None or listened else compiled.params([f.pre_save(obj, True) for f in compiled.fields])
    if compiled is None or params is None:
        obj.save(force_insert=True, using=alias)
        return
    pk = compiled.run(params, _first_value)
    setattr(obj, model._meta.auto_field.attname, pk)
    obj._state.adding = False
    obj._state.db = alias


def delete_rows(model: type[Model], field: str, value: Any) -> None:
    """``model.objects.filter(<field>=value).delete()`` as one DELETE.

    The ORM's way (its collector, which loads the rows first) is taken whenever that does more
    than this statement: the model's delete signals have receivers or its rows have dependents.
    """
    alias = router.db_for_write(model)
    if not Collector(using=alias, origin=None).can_fast_delete(model):
        model._base_manager.using(alias).filter(**{field: value}).delete()
        return
    key = (alias, model, field)
    if key not in _deletes:
        qn = connections[alias].ops.quote_name
        target = model._meta.get_field(field)
        sql = f"DELETE FROM {qn(model._meta.db_table)} WHERE {qn(target.column)} = %s"
        _deletes[key] = _Compiled(alias, sql, [target], lookup=True)
    compiled = _deletes[key]
    params = compiled.params([value])
    if params is None:
        model._base_manager.using(alias).filter(**{field: value}).delete()
        return
    compiled.run(params)
