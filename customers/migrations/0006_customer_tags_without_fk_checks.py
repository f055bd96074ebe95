"""Customer tag links without per-row foreign-key checks, and with two indexes instead of three.

The link table is written in bulk by CSV imports and bulk tag actions; PostgreSQL checks a foreign
key with one trigger call per inserted row, which cost more than writing the links
(docs/decisions.md, "Customer tag links"). The ORM's collector still removes the links of a deleted
customer or tag. The single-column `customer_id` index is dropped: the unique (customer_id, tag_id)
index starts with that column. The `tag_id` index becomes (tag_id, customer_id), so "customers with
tag X" is answered from the index alone.
"""

from django.db import migrations, models

TABLE = "customers_customer_tags"
CUSTOMER_INDEX = "customers_customer_tags_customer_id_0423a302"
TAG_INDEX = "customers_customer_tags_tag_id_4d54c921"
TAG_CUSTOMER_INDEX = "customer_tags_tag_customer"


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_tracking_inbox"),
    ]

    operations = [
        migrations.AlterField(
            model_name="customer",
            name="tags",
            field=models.ManyToManyField(blank=True, db_constraint=False, related_name="customers", to="customers.tag"),
        ),
        # Raw SQL: the auto-created through model's FK fields always ask for their own index.
        migrations.RunSQL(
            [
                f"DROP INDEX IF EXISTS {CUSTOMER_INDEX}",
                f"DROP INDEX IF EXISTS {TAG_INDEX}",
                f"CREATE INDEX {TAG_CUSTOMER_INDEX} ON {TABLE} (tag_id, customer_id)",
            ],
            reverse_sql=[
                f"DROP INDEX IF EXISTS {TAG_CUSTOMER_INDEX}",
                f"CREATE INDEX {TAG_INDEX} ON {TABLE} (tag_id)",
                f"CREATE INDEX {CUSTOMER_INDEX} ON {TABLE} (customer_id)",
            ],
        ),
    ]
