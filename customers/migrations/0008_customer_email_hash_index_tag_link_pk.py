"""Cheaper bulk writes of profiles and tag links (docs/decisions.md, "CSV import performance").

- `customer_email_idx` becomes a hash index on PostgreSQL (customers.models.indexes.EqualityIndex):
  emails are only compared with `=`, and a CSV import inserts them in random order, which cost a
  btree about 2 s per million profiles.
- The tag link table's primary key becomes (customer_id, tag_id), replacing the unique constraint on
  those columns, and the surrogate `id` loses its index (PostgreSQL only). Every link query names
  the pair; the `id` index was a third index to maintain per link and served nothing. The `id`
  column stays, filled by its identity default, because Django's auto-created through model
  selects it; its sequence hands a session 1,000 values at a time (nothing reads link ids, and a
  value per row from the shared sequence cost 5 % of a bulk insert of links).
"""

import customers.models.indexes
from django.db import migrations

TABLE = "customers_customer_tags"
PKEY = "customers_customer_tags_pkey"


def _pair_constraint(cursor) -> str:
    cursor.execute(
        "SELECT c.conname FROM pg_constraint AS c WHERE c.conrelid = %s::regclass AND c.contype = 'u' "
        "AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) = ARRAY['customer_id', 'tag_id']",
        [TABLE],
    )
    (name,) = cursor.fetchone()
    return name


def pair_primary_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        unique = _pair_constraint(cursor)
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {PKEY}")
        cursor.execute(f'ALTER TABLE {TABLE} DROP CONSTRAINT "{unique}"')
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {PKEY} PRIMARY KEY (customer_id, tag_id)")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET CACHE 1000")


def id_primary_key(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET CACHE 1")
        cursor.execute(f"ALTER TABLE {TABLE} DROP CONSTRAINT {PKEY}")
        cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {PKEY} PRIMARY KEY (id)")
        cursor.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT customers_customer_tags_customer_id_tag_id_uniq UNIQUE (customer_id, tag_id)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0007_customer_last_seen_partial_index"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="customer",
            name="customer_email_idx",
        ),
        migrations.AddIndex(
            model_name="customer",
            index=customers.models.indexes.EqualityIndex(fields=["email"], name="customer_email_idx"),
        ),
        migrations.RunPython(pair_primary_key, id_primary_key),
    ]
