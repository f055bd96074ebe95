"""Index types the ORM has no portable spelling for."""

from __future__ import annotations

from django.db import models


class EqualityIndex(models.Index):
    """A hash index on PostgreSQL (a btree elsewhere) for a column only ever compared with `=`.

    A hash index stores a 4-byte hash per row and inserts without comparing strings, so a bulk
    insert of random keys (a CSV import's emails) maintains it at a fraction of a btree's cost;
    it cannot serve ranges, prefixes or ORDER BY, which no query on such a column asks for.
    """

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            using = " USING hash"
        return super().create_sql(model, schema_editor, using=using, **kwargs)
