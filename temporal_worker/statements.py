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
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router, transaction
from django.db.models import Model, signals
from django.db.models.constants import OnConflict
from django.db.models.deletion import Collector

__all__ = ["delete_rows", "insert_ignoring_conflicts", "insert_row", "update_row"]

# (database alias, model, column names) -> (SQL, fields); None: use the ORM for these.
_updates: dict[tuple[str, type[Model], tuple[str, ...]], tuple[str, list[Any]] | None] = {}
_inserts: dict[tuple[str, type[Model]], tuple[str, list[Any]] | None] = {}
_returning: dict[tuple[str, type[Model]], tuple[str, list[Any]] | None] = {}
_deletes: dict[tuple[str, type[Model], str], tuple[str, Any]] = {}


def _plain(value: Any) -> bool:
    """A value the ORM would only convert: not an expression, not a model instance."""
    return not hasattr(value, "resolve_expression") and not isinstance(value, Model)


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
            _updates[key] = (sql, targets)
        else:
            _updates[key] = None
    compiled = _updates[key]
    if compiled is None or not all(_plain(v) for v in fields.values()):
        return model._base_manager.using(alias).filter(pk=pk).update(**fields)
    sql, targets = compiled
    conn = connections[alias]
    params = [f.get_db_prep_save(v, connection=conn) for f, v in zip(targets, fields.values(), strict=True)]
    params.append(model._meta.pk.get_db_prep_value(pk, conn))
    with transaction.mark_for_rollback_on_error(alias), conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


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
            _inserts[key] = (sql, fields)
        else:
            _inserts[key] = None
    compiled = _inserts[key]
    values = None if compiled is None else [f.pre_save(obj, True) for f in compiled[1]]
    if compiled is None or values is None or not all(_plain(v) for v in values):
        model._base_manager.using(alias).bulk_create([obj], ignore_conflicts=True)
        return
    sql, fields = compiled
    conn = connections[alias]
    params = [f.get_db_prep_save(v, connection=conn) for f, v in zip(fields, values, strict=True)]
    with transaction.mark_for_rollback_on_error(alias), conn.cursor() as cursor:
        cursor.execute(sql, params)


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
            _returning[key] = (sql, fields)
        else:
            _returning[key] = None
    compiled = _returning[key]
    listened = signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)
    values = None if compiled is None or listened else [f.pre_save(obj, True) for f in compiled[1]]
    if compiled is None or values is None or not all(_plain(v) for v in values):
        obj.save(force_insert=True, using=alias)
        return
    sql, fields = compiled
    params = [f.get_db_prep_save(v, connection=conn) for f, v in zip(fields, values, strict=True)]
    with transaction.mark_for_rollback_on_error(alias), conn.cursor() as cursor:
        cursor.execute(sql, params)
        pk = cursor.fetchone()[0]
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
    conn = connections[alias]
    key = (alias, model, field)
    if key not in _deletes:
        qn = conn.ops.quote_name
        target = model._meta.get_field(field)
        sql = f"DELETE FROM {qn(model._meta.db_table)} WHERE {qn(target.column)} = %s"
        _deletes[key] = (sql, target.target_field if target.is_relation else target)
    sql, column = _deletes[key]
    with transaction.mark_for_rollback_on_error(alias), conn.cursor() as cursor:
        cursor.execute(sql, [column.get_db_prep_value(value, conn)])
