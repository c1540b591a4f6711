"""The projection's hot statements, compiled once: an UPDATE of some columns of one row, and an
INSERT that skips a row already there.

Every step writes its run's row and a history row. Through the ORM, ``QuerySet.update`` and
``bulk_create`` build and compile their query on every call, which cost more CPU than the
database spent on the statements (a third of the library's own CPU per run in ``make bench``).
Here the SQL text is built once per model and set of columns, with Django's own quoting and
conflict syntax for the connection's database, and each call only converts its values
(``Field.get_db_prep_save``, as the ORM does) and executes. What the ORM would do differently
(expressions, model instances as values, fields with their own placeholders, a database
without conflict skipping) goes through the ORM as before.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router, transaction
from django.db.models import Model
from django.db.models.constants import OnConflict

__all__ = ["insert_ignoring_conflicts", "update_row"]

# (database alias, model, column names) -> (SQL, fields); None: use the ORM for these.
_updates: dict[tuple[str, type[Model], tuple[str, ...]], tuple[str, list[Any]] | None] = {}
_inserts: dict[tuple[str, type[Model]], tuple[str, list[Any]] | None] = {}


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
