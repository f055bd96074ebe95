"""Pre-built segments (decisions 25): read-only, dynamic, pending until first computed.

Definitions are written literally (a migration must not import the engine, whose code moves on);
their dependencies are classified after migrate by segmentation.apps (post_migrate).
"""

from django.db import migrations


def _attr(name, operator, value=None):
    node = {"attribute": name, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def _all(*conditions):
    return {"match": "all", "conditions": list(conditions)}


PREBUILT = [
    ("everyone", "Everyone", "Every customer profile.", _all()),
    (
        "new-visitors",
        "New Visitors",
        "First seen in the last 30 days and no orders yet.",
        _all(_attr("first_seen_at", "less_than_days_ago", 30), _attr("orders_count", "is", 0)),
    ),
    ("returning-customers", "Returning Customers", "Two or more orders.", _all(_attr("orders_count", "at_least", 2))),
    (
        "high-value-customers",
        "High-Value Customers",
        "Spent at least 1,000 in total.",
        _all(_attr("total_spent", "at_least", 1000)),
    ),
    (
        "cart-abandoners",
        "Cart Abandoners",
        "Added a product to the cart in the last 7 days and did not order after it.",
        _all({"event": "Product Added", "within": {"last_days": 7}, "not_followed_by": {"event": "Order Completed"}}),
    ),
    (
        "non-customer-visitors",
        "Non-customer Visitors",
        "Viewed pages but never ordered.",
        _all({"event": "Page Viewed"}, _attr("orders_count", "is", 0)),
    ),
    (
        "engaged-mobile-browsers",
        "Engaged Mobile Browsers",
        "At least 5 page views on a mobile device in the last 30 days.",
        _all(
            {
                "event": "Page Viewed",
                "within": {"last_days": 30},
                "where": [{"property": "context.device.type", "operator": "is", "value": "mobile"}],
                "count": {"operator": "at_least", "value": 5},
            }
        ),
    ),
    (
        "email-engaged-customers",
        "Email-engaged Customers",
        "Opened or clicked an email in the last 30 days.",
        {
            "match": "any",
            "conditions": [
                {"event": "Email Opened", "within": {"last_days": 30}},
                {"event": "Email Clicked", "within": {"last_days": 30}},
            ],
        },
    ),
    (
        "loyal-customers",
        "Loyal Customers",
        "Five or more orders, the latest in the last 90 days.",
        _all(_attr("orders_count", "at_least", 5), _attr("last_order_at", "less_than_days_ago", 90)),
    ),
    (
        "at-risk-customers",
        "At-risk Customers",
        "Ordered before, but not in the last 90 days.",
        _all(_attr("orders_count", "at_least", 1), _attr("last_order_at", "more_than_days_ago", 90)),
    ),
]


def create_prebuilt(apps, schema_editor):
    Segment = apps.get_model("segmentation", "Segment")
    for key, name, description, definition in PREBUILT:
        if Segment.objects.filter(key__iexact=key).exists():
            continue
        Segment.objects.create(
            key=key,
            name=name,
            description=description,
            kind="dynamic",
            definition=definition,
            prebuilt=True,
            status="pending",
        )


def remove_prebuilt(apps, schema_editor):
    Segment = apps.get_model("segmentation", "Segment")
    Segment.objects.filter(prebuilt=True, key__in=[p[0] for p in PREBUILT]).delete()


class Migration(migrations.Migration):
    dependencies = [("segmentation", "0002_exports")]

    operations = [migrations.RunPython(create_prebuilt, remove_prebuilt)]
