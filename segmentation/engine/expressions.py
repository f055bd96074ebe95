"""Vendor-neutral SQL expressions for JSON values (custom attributes, event properties).

Django's KeyTransform reads integer-looking keys as array indexes and extracts booleans
differently on each database, so the engine uses its own small set of functions:
every path part is an exact object key, and JSON types are reported in one vocabulary:
"string", "number", "true", "false", "null", "object", "array", or "missing" (never NULL).
"""

from __future__ import annotations

import json

from django.db.models import BooleanField, CharField, Expression, F, FloatField, Func, TextField, Value

from .values import NUMERIC_PATTERN_PG, NUMERIC_PATTERN_PY


def _sqlite_path(keys) -> str:
    # Every part quoted: `$."0"` is the key "0", never an array index.
    return "$" + "".join("." + json.dumps(key) for key in keys)


class _JsonPathFunc(Func):
    """Base: holds the column and the exact key path; subclasses render per vendor."""

    arity = 1

    def __init__(self, column: str | Expression, keys, **extra):
        self.keys = tuple(keys)
        super().__init__(F(column) if isinstance(column, str) else column, **extra)

    def _pg_parts(self, compiler, connection):
        col_sql, col_params = compiler.compile(self.source_expressions[0])
        # `->` with a text operand reads object keys only (jsonb_extract_path would index arrays).
        chain = "".join(" -> %s::text" for _ in self.keys)
        return f"({col_sql}{chain})", (*col_params, *self.keys)

    def _sqlite_parts(self, compiler, connection):
        col_sql, col_params = compiler.compile(self.source_expressions[0])
        return col_sql, (*col_params,), _sqlite_path(self.keys)

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover - only two vendors
        raise NotImplementedError(f"The segment engine supports PostgreSQL and SQLite, not {connection.vendor}.")


class JsonKind(_JsonPathFunc):
    """The JSON type at a path in the shared vocabulary, "missing" when absent (never NULL)."""

    output_field = CharField()

    def as_postgresql(self, compiler, connection, **extra):
        x, params = self._pg_parts(compiler, connection)
        kind = f"CASE jsonb_typeof({x}) WHEN 'boolean' THEN ({x} #>> '{{}}') ELSE jsonb_typeof({x}) END"
        sql = f"COALESCE({kind}, 'missing')"
        return sql, (*params, *params, *params)

    def as_sqlite(self, compiler, connection, **extra):
        col, params, path = self._sqlite_parts(compiler, connection)
        sql = (
            f"COALESCE(CASE json_type({col}, %s) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            f"WHEN 'text' THEN 'string' ELSE json_type({col}, %s) END, 'missing')"
        )
        return sql, (*params, path, *params, path)


class JsonText(_JsonPathFunc):
    """The text of a JSON string at a path; NULL for any other type or a missing path."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        x, params = self._pg_parts(compiler, connection)
        return f"(CASE WHEN jsonb_typeof({x}) = 'string' THEN ({x} #>> '{{}}') END)", (*params, *params)

    def as_sqlite(self, compiler, connection, **extra):
        col, params, path = self._sqlite_parts(compiler, connection)
        return (
            f"(CASE WHEN json_type({col}, %s) = 'text' THEN json_extract({col}, %s) END)",
            (*params, path, *params, path),
        )


class JsonRaw(_JsonPathFunc):
    """The JSON text of the value at a path (used to tell `[]` from a non-empty array)."""

    output_field = TextField()

    def as_postgresql(self, compiler, connection, **extra):
        x, params = self._pg_parts(compiler, connection)
        return f"(({x})::text)", params

    def as_sqlite(self, compiler, connection, **extra):
        col, params, path = self._sqlite_parts(compiler, connection)
        return f"json_extract({col}, %s)", (*params, path)


class JsonNumber(_JsonPathFunc):
    """A JSON number at a path (and, with `strings=True`, a numeric string); else NULL.

    PostgreSQL yields numeric (exact), SQLite a REAL/INTEGER; see NumberLiteral.
    """

    output_field = FloatField()

    def __init__(self, column, keys, *, strings: bool, **extra):
        self.strings = strings
        super().__init__(column, keys, **extra)

    def as_postgresql(self, compiler, connection, **extra):
        x, params = self._pg_parts(compiler, connection)
        text = f"({x} #>> '{{}}')"
        sql = f"WHEN jsonb_typeof({x}) = 'number' THEN {text}::numeric"
        all_params = (*params, *params)
        if self.strings:
            sql += f" WHEN jsonb_typeof({x}) = 'string' AND {text} ~ %s THEN {text}::numeric"
            all_params += (*params, *params, NUMERIC_PATTERN_PG, *params)
        return f"(CASE {sql} END)", all_params

    def as_sqlite(self, compiler, connection, **extra):
        col, params, path = self._sqlite_parts(compiler, connection)
        sql = f"WHEN json_type({col}, %s) IN ('integer', 'real') THEN json_extract({col}, %s)"
        all_params = (*params, path, *params, path)
        if self.strings:
            sql += (
                f" WHEN json_type({col}, %s) = 'text' AND json_extract({col}, %s) REGEXP %s"
                f" THEN CAST(json_extract({col}, %s) AS REAL)"
            )
            all_params += (*params, path, *params, path, NUMERIC_PATTERN_PY, *params, path)
        return f"(CASE {sql} END)", all_params


class NumberLiteral(Expression):
    """A condition number: exact numeric on PostgreSQL, REAL on SQLite.

    Passing a Decimal to SQLite binds it as text, and text never equals a number there, so the
    literal is cast explicitly on both databases.
    """

    output_field = FloatField()

    def __init__(self, value):
        super().__init__()
        self.value = str(value)

    def get_group_by_cols(self):
        # A constant: never a grouping column (Django would otherwise add it to GROUP BY).
        return []

    def as_postgresql(self, compiler, connection, **extra):
        return "(%s)::numeric", (self.value,)

    def as_sqlite(self, compiler, connection, **extra):
        return "CAST(%s AS REAL)", (self.value,)

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover
        raise NotImplementedError(connection.vendor)


TRUE = Value(True, output_field=BooleanField())
