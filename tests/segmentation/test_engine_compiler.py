"""Compiler and evaluator, operator by operator, on a small cast with unknowns everywhere.

Every case goes through `members`, which asserts the SQL compiler and the Python evaluator agree
and that the negated definition selects exactly the complement (two-valued logic).
"""

import datetime as dt

import pytest

from tests.segmentation.engine_fixtures import NOW, ago, attr, customer, event, members, one, segment_with

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


@pytest.fixture
def cast():
    ann = customer(
        country="PL",
        email="ann@shop.uk",
        first_name="Ann",
        gender="female",
        birth_date=dt.date(2000, 2, 29),
        city="Kraków",
        source="MailChimp",
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        first_seen_at=ago(days=40),
        last_seen_at=ago(hours=1),
        custom={
            "plan": "Gold",
            "score": 5,
            "vip": True,
            "signup": "2026-01-10",
            "last_login": "2026-06-14T08:00:00.000000Z",
            "items": ["a"],
            "0": 1,
            "address.city": "Łódź",
        },
        tags=["VIP", "newsletter"],
    )
    bob = customer(
        country="GB",
        email="bob@mail.com",
        gender="male",
        birth_date=dt.date(1990, 6, 15),
        created_at=dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        first_seen_at=ago(days=100),
        custom={"plan": "silver", "score": 12.5, "vip": False, "items": []},
        tags=["staff"],
    )
    cat = customer(created_at=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), custom={"plan": "", "score": "7"})
    dan = customer(country="DE", first_name="ÉMILE", created_at=NOW, custom={"plan": None}, tags=["vip-gold"])

    event(ann, "Order Completed", ago(days=1), properties={"revenue": 120.5})
    event(ann, "Order Completed", ago(days=10), properties={"revenue": "30"})
    event(ann, "Order Completed", NOW + dt.timedelta(hours=1), properties={"revenue": 1000})  # future: ignored
    for days in range(1, 6):
        event(ann, "Page Viewed", ago(days=days), context={"device": {"type": "Mobile"}})
    event(ann, "Product Added", ago(days=2))
    event(bob, "Product Added", ago(days=3))
    event(bob, "Order Completed", ago(days=100), properties={"revenue": "abc"})
    event(bob, "Page Viewed", ago(days=40), context={"device": {"type": "desktop"}})
    event(bob, "Email Opened", ago(days=5))
    event(dan, "Product Added", ago(days=1))
    event(dan, "Order Completed", ago(days=1) + dt.timedelta(hours=1))
    segment_with("vip list", [bob])
    return {"ann": ann.pk, "bob": bob.pk, "cat": cat.pk, "dan": dan.pk}


ATTRIBUTE_CASES = [
    # strings, case and whitespace-insensitive; negatives include unknowns
    (attr("email", "ends_with", ".UK"), "ann"),
    (attr("email", "is", " ANN@shop.uk "), "ann"),
    (attr("email", "is_not", "ann@shop.uk"), "bob cat dan"),
    (attr("first_name", "is", "émile"), "dan"),
    (attr("first_name", "contains", "mil"), "dan"),
    (attr("first_name", "does_not_contain", "an"), "bob cat dan"),
    (attr("city", "starts_with", "KRA"), "ann"),
    (attr("country", "is", "pl"), "ann"),
    (attr("country", "is_any_of", ["pl", "DE"]), "ann dan"),
    (attr("country", "is_none_of", ["PL"]), "bob cat dan"),
    (attr("country", "has_any_value"), "ann bob dan"),
    (attr("country", "is_unknown"), "cat"),
    (attr("gender", "is", "Female"), "ann"),
    (attr("gender", "is_not", "female"), "bob cat dan"),
    (attr("source", "is", "mailchimp"), "ann"),
    # custom attributes in their registered type; other JSON types are unknown
    (attr("custom.plan", "is", "gold"), "ann"),
    (attr("custom.plan", "is_not", "gold"), "bob cat dan"),
    (attr("custom.plan", "is_unknown"), "cat dan"),
    (attr("custom.plan", "has_any_value"), "ann bob"),
    (attr("custom.plan", "is_any_of", ["SILVER", "bronze"]), "bob"),
    (attr("custom.score", "more_than", 5), "bob"),
    (attr("custom.score", "at_least", 5), "ann bob"),
    (attr("custom.score", "is", 12.5), "bob"),
    (attr("custom.score", "is_any_of", [5, 7]), "ann"),
    (attr("custom.score", "is_none_of", [5]), "bob cat dan"),
    (attr("custom.score", "between", [5, 12.5]), "ann bob"),
    (attr("custom.score", "less_than", 100), "ann bob"),
    (attr("custom.score", "at_most", 5), "ann"),
    (attr("custom.score", "has_any_value"), "ann bob cat"),
    (attr("custom.vip", "is", True), "ann"),
    (attr("custom.vip", "is", False), "bob"),
    (attr("custom.vip", "is_not", True), "bob cat dan"),
    (attr("custom.vip", "is_unknown"), "cat dan"),
    (attr("custom.signup", "before", "2026-01-11"), "ann"),
    (attr("custom.signup", "on", "2026-01-10"), "ann"),
    (attr("custom.signup", "is", "2026-01-10"), "ann"),
    (attr("custom.signup", "is_not", "2026-01-10"), "bob cat dan"),
    (attr("custom.signup", "after", "2026-01-10"), ""),
    (attr("custom.signup", "between", ["2026-01-10", "2026-01-10"]), "ann"),
    (attr("custom.signup", "less_than_days_ago", 200), "ann"),
    (attr("custom.signup", "more_than_days_ago", 200), ""),
    (attr("custom.last_login", "on", "2026-06-14"), "ann"),
    (attr("custom.last_login", "before", "2026-06-14"), ""),
    (attr("custom.last_login", "after", "2026-06-13"), "ann"),
    (attr("custom.last_login", "after", "2026-06-14T08:00:00Z"), ""),
    (attr("custom.last_login", "before", "2026-06-14T08:00:01"), "ann"),
    (attr("custom.last_login", "less_than_days_ago", 1), ""),
    (attr("custom.last_login", "more_than_days_ago", 1), "ann"),
    (attr("custom.last_login", "between", ["2026-06-14T08:00:00Z", "2026-06-14T10:00:00+02:00"]), "ann"),
    (attr("custom.items", "has_any_value"), "ann"),
    (attr("custom.items", "is_unknown"), "bob cat dan"),
    (attr("custom.0", "is", 1), "ann"),
    (attr("custom.address.city", "is", "ŁÓDŹ"), "ann"),
    # tags
    (attr("tags", "contains", "vip"), "ann"),
    (attr("tags", "does_not_contain", "VIP"), "bob cat dan"),
    (attr("tags", "starts_with", "vip"), "ann dan"),
    (attr("tags", "ends_with", "GOLD"), "dan"),
    (attr("tags", "is_any_of", ["staff", "Newsletter"]), "ann bob"),
    (attr("tags", "is_none_of", ["staff"]), "ann cat dan"),
    (attr("tags", "has_any_value"), "ann bob dan"),
    (attr("tags", "is_unknown"), "cat"),
    # dates and datetimes (whole UTC days for date-only values)
    (attr("birth_date", "before", "1995-01-01"), "bob"),
    (attr("birth_date", "is", "2000-02-29"), "ann"),
    (attr("birth_date", "is_not", "2000-02-29"), "bob cat dan"),
    (attr("birth_date", "between", ["1990-06-15", "2000-02-29"]), "ann bob"),
    (attr("birth_date", "more_than_days_ago", 365), "ann bob"),
    (attr("first_seen_at", "less_than_days_ago", 30), ""),
    (attr("first_seen_at", "less_than_days_ago", 50), "ann"),
    (attr("first_seen_at", "more_than_days_ago", 50), "bob"),
    (attr("first_seen_at", "is_unknown"), "cat dan"),
    (attr("last_seen_at", "has_any_value"), "ann"),
    (attr("created_at", "on", "2026-01-01"), "ann"),
    (attr("created_at", "before", "2026-01-01"), "bob"),
    (attr("created_at", "after", "2026-01-01"), "cat dan"),
    (attr("created_at", "between", ["2026-01-01", "2026-01-02"]), "ann cat"),
    (attr("created_at", "between", ["2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z"]), "ann bob"),
    # system attributes computed from events (future events ignored)
    (attr("orders_count", "is", 0), "cat"),
    (attr("orders_count", "at_least", 2), "ann"),
    (attr("orders_count", "is", 1), "bob dan"),
    (attr("orders_count", "less_than", 2), "bob cat dan"),
    (attr("orders_count", "is_any_of", [0, 2]), "ann cat"),
    (attr("orders_count", "is_not", 1), "ann cat"),
    (attr("orders_count", "is_none_of", [1, 2]), "cat"),
    (attr("event_count", "more_than", 4), "ann"),
    (attr("event_count", "at_most", 2), "cat dan"),
    (attr("event_count", "between", [2, 4]), "bob dan"),
    (attr("event_count", "is_unknown"), ""),
    (attr("total_spent", "at_least", 150.5), "ann"),
    (attr("total_spent", "is", 0), "bob cat dan"),
    (attr("total_spent", "less_than", 100), "bob cat dan"),
    (attr("total_spent", "has_any_value"), "ann bob cat dan"),
    (attr("last_order_at", "less_than_days_ago", 90), "ann dan"),
    (attr("last_order_at", "more_than_days_ago", 90), "bob"),
    (attr("last_order_at", "is_unknown"), "cat"),
    (attr("last_order_at", "on", "2026-06-14"), "ann dan"),
    # age in whole years from birth_date
    (attr("age", "at_least", 30), "bob"),
    (attr("age", "is", 26), "ann"),
    (attr("age", "is", 36), "bob"),
    (attr("age", "is_not", 26), "bob cat dan"),
    (attr("age", "less_than", 30), "ann"),
    (attr("age", "between", [26, 36]), "ann bob"),
    (attr("age", "more_than", 35.5), "bob"),
    (attr("age", "is", 26.5), ""),
    (attr("age", "is_any_of", [1, 36]), "bob"),
    (attr("age", "is_unknown"), "cat dan"),
]


def names(ids, cast):
    reverse = {v: k for k, v in cast.items()}
    return " ".join(sorted(reverse[i] for i in ids))


@pytest.mark.parametrize(("condition", "expected"), ATTRIBUTE_CASES, ids=lambda v: str(v)[:60])
def test_attribute_operators(cast, condition, expected):
    assert names(members(one(condition)), cast) == expected


def ev(name, **extra):
    return {"event": name, **extra}


REVENUE = "properties.revenue"
EVENT_CASES = [
    (ev("Page Viewed"), "ann bob"),
    (ev("Page Viewed", count={"operator": "is", "value": 0}), "cat dan"),
    (
        ev(
            "Page Viewed",
            within={"last_days": 30},
            where=[{"property": "context.device.type", "operator": "is", "value": "MOBILE"}],
            count={"operator": "at_least", "value": 5},
        ),
        "ann",
    ),
    # a window excludes its lower edge: now - 3 days is outside "last 3 days"
    (ev("Page Viewed", within={"last_days": 3}, count={"operator": "at_least", "value": 3}), ""),
    (ev("Page Viewed", within={"last_days": 3}, count={"operator": "is", "value": 2}), "ann"),
    (ev("Page Viewed", within={"last_days": 3}, count={"operator": "less_than", "value": 2}), "bob cat dan"),
    (ev("Page Viewed", count={"operator": "between", "value": [0, 1]}), "bob cat dan"),
    (ev("Page Viewed", count={"operator": "is_not", "value": 1}), "ann cat dan"),
    (ev("Email Opened", within={"last_hours": 200}), "bob"),
    (ev("Email Opened", within={"last_hours": 100}), ""),
    (ev("Product Added", within={"last_days": 7}, not_followed_by={"event": "Order Completed"}), "bob"),
    (ev("Product Added", followed_by={"event": "Order Completed"}), "ann dan"),
    (
        ev(
            "Product Added",
            followed_by={"event": "Order Completed", "where": [{"property": REVENUE, "operator": "has_any_value"}]},
        ),
        "ann",
    ),
    (
        ev("Order Completed", not_followed_by={"event": "Order Completed"}, count={"operator": "is", "value": 1}),
        "ann bob dan",
    ),
    (
        ev("Order Completed", followed_by={"event": "Order Completed"}, count={"operator": "is", "value": 0}),
        "bob cat dan",
    ),
    (
        ev(
            "Order Completed", aggregate={"function": "sum", "property": REVENUE, "operator": "more_than", "value": 100}
        ),
        "ann",
    ),
    (
        ev("Order Completed", aggregate={"function": "sum", "property": REVENUE, "operator": "less_than", "value": 1}),
        "bob cat dan",
    ),
    (
        ev("Order Completed", aggregate={"function": "avg", "property": REVENUE, "operator": "is", "value": 75.25}),
        "ann",
    ),
    (
        ev("Order Completed", aggregate={"function": "min", "property": REVENUE, "operator": "at_most", "value": 30}),
        "ann",
    ),
    (
        ev("Order Completed", aggregate={"function": "max", "property": REVENUE, "operator": "is_not", "value": 120.5}),
        "",
    ),
    (
        ev("Order Completed", aggregate={"function": "max", "property": REVENUE, "operator": "is_not", "value": 1}),
        "ann",
    ),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "is_unknown"}]), "dan"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "is_not", "value": 30}]), "ann bob dan"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "is", "value": "ABC"}]), "bob"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "more_than", "value": 100}]), "ann"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "is_any_of", "value": [30, "abc"]}]), "ann bob"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "is_none_of", "value": [30, 120.5]}]), "bob dan"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "between", "value": [30, 30]}]), "ann"),
    (ev("Order Completed", where=[{"property": REVENUE, "operator": "contains", "value": "b"}]), "bob"),
    (ev("Order Completed", within={"before": "2026-06-14"}), "ann bob"),
    (ev("Order Completed", within={"after": "2026-06-13"}), "ann dan"),
    (ev("Order Completed", within={"after": "2026-06-14T12:00:00Z"}), "dan"),
    (ev("Order Completed", within={"between": ["2026-06-05", "2026-06-05"]}), "ann"),
]


@pytest.mark.parametrize(("condition", "expected"), EVENT_CASES, ids=lambda v: str(v)[:60])
def test_event_conditions(cast, condition, expected):
    assert names(members(one(condition)), cast) == expected


def test_segment_conditions_read_current_membership(cast):
    assert names(members(one({"segment": "VIP LIST", "operator": "in"})), cast) == "bob"
    assert names(members(one({"segment": "vip list", "operator": "not_in"})), cast) == "ann cat dan"


def test_groups_nest_and_negate(cast):
    everyone = "ann bob cat dan"
    assert names(members({"match": "all", "conditions": []}), cast) == everyone
    assert names(members({"match": "any", "conditions": []}), cast) == everyone
    assert names(members({"match": "any", "conditions": [], "negate": True}), cast) == ""
    definition = {
        "match": "any",
        "conditions": [
            {"match": "all", "conditions": [attr("country", "is", "PL"), attr("custom.vip", "is", True)]},
            {
                "match": "all",
                "negate": True,
                "conditions": [
                    attr("custom.plan", "has_any_value"),
                    {"match": "any", "conditions": [attr("tags", "contains", "staff"), attr("age", "is_unknown")]},
                ],
            },
        ],
    }
    assert names(members(definition), cast) == "ann cat dan"


def test_sequence_ties_break_by_received_at_then_id():
    t = ago(days=1)
    eve = customer()
    event(eve, "Order Completed", t, received_at=t + dt.timedelta(seconds=2))
    event(eve, "Product Added", t, received_at=t + dt.timedelta(seconds=1))
    fay = customer()
    event(fay, "Product Added", t)
    event(fay, "Order Completed", t)  # same time and arrival: the later id is later
    gus = customer()
    event(gus, "Order Completed", t)
    event(gus, "Product Added", t)
    followed = members(one(ev("Product Added", followed_by={"event": "Order Completed"})))
    assert followed == {eve.pk, fay.pk}
    assert members(one(ev("Product Added", not_followed_by={"event": "Order Completed"}))) == {gus.pk}
    # an event is never later than itself
    assert members(one(ev("Product Added", followed_by={"event": "Product Added"}))) == set()


@pytest.mark.parametrize(
    ("now", "at_least_27"),
    [
        (dt.datetime(2027, 2, 28, 23, 0, tzinfo=dt.UTC), False),  # 29 Feb counts as 1 Mar in 2027
        (dt.datetime(2027, 3, 1, 0, 0, tzinfo=dt.UTC), True),
        (dt.datetime(2028, 2, 28, 0, 0, tzinfo=dt.UTC), True),
    ],
)
def test_age_of_someone_born_on_29_february(now, at_least_27):
    leapling = customer(birth_date=dt.date(2000, 2, 29))
    customer(birth_date=dt.date(2001, 3, 1))
    assert (leapling.pk in members(one(attr("age", "at_least", 27)), now=now)) is at_least_27
    assert (leapling.pk in members(one(attr("age", "is", 26)), now=now)) is not at_least_27


def test_age_when_today_is_29_february():
    now = dt.datetime(2028, 2, 29, 12, tzinfo=dt.UTC)
    born = {d: customer(birth_date=d).pk for d in (dt.date(2000, 2, 28), dt.date(2000, 2, 29), dt.date(2000, 3, 1))}
    assert members(one(attr("age", "at_least", 28)), now=now) == {
        born[dt.date(2000, 2, 28)],
        born[dt.date(2000, 2, 29)],
    }
    assert members(one(attr("age", "at_least", 27)), now=now) == set(born.values())


def test_numeric_strings_and_rounding_in_sums():
    a = customer()
    for revenue in (0.1, "0.2", "02134", "1e3", True, None, {"x": 1}):
        event(a, "Order Completed", ago(days=1), properties={"revenue": revenue})
    assert members(one(attr("total_spent", "is", 0.3))) == {a.pk}
    agg = {"function": "avg", "property": REVENUE, "operator": "is", "value": 0.15}
    assert members(one(ev("Order Completed", aggregate=agg))) == {a.pk}
    where = [{"property": REVENUE, "operator": "is", "value": "02134"}]
    assert members(one(ev("Order Completed", where=where))) == {a.pk}


def test_property_paths_are_exact_keys():
    a = customer()
    event(a, "Page Viewed", ago(days=1), properties={"0": {"1": "x"}, "a.b": 5, "list": ["x"]})
    b = customer()
    event(b, "Page Viewed", ago(days=1), properties={"list": ["x", "y"], "a": {"b": 5}})
    assert members(one(ev("Page Viewed", where=[{"property": "properties.0.1", "operator": "is", "value": "X"}]))) == {
        a.pk
    }
    assert members(one(ev("Page Viewed", where=[{"property": "properties.a.b", "operator": "is", "value": 5}]))) == {
        b.pk
    }
    nested = [{"property": "properties.list.0", "operator": "has_any_value"}]
    assert members(one(ev("Page Viewed", where=nested))) == set()


def test_booleans_in_event_properties():
    a = customer()
    event(a, "Signed Up", ago(days=1), properties={"trial": True})
    b = customer()
    event(b, "Signed Up", ago(days=1), properties={"trial": "true"})
    c = customer()
    event(c, "Signed Up", ago(days=1), properties={"trial": 1})
    where = [{"property": "properties.trial", "operator": "is", "value": True}]
    assert members(one(ev("Signed Up", where=where))) == {a.pk}
    where = [{"property": "properties.trial", "operator": "is_not", "value": True}]
    assert members(one(ev("Signed Up", where=where))) == {b.pk, c.pk}


def test_exclude_and_negation_are_exact_complements_on_json_keys_and_nullable_columns(cast):
    from customers.models import Customer
    from segmentation.engine import compile_definition
    from tests.segmentation.engine_fixtures import REGISTRY

    everyone = set(Customer.objects.values_list("pk", flat=True))
    for condition in (
        attr("custom.plan", "is", "gold"),
        attr("custom.score", "more_than", 1),
        attr("custom.vip", "is", True),
        attr("city", "starts_with", "kra"),
        attr("first_seen_at", "more_than_days_ago", 1),
        attr("birth_date", "before", "2000-01-01"),
    ):
        q = compile_definition(one(condition), now=NOW, registry=REGISTRY)
        inside = set(Customer.objects.filter(q).values_list("pk", flat=True))
        assert set(Customer.objects.exclude(q).values_list("pk", flat=True)) == everyone - inside
        assert set(Customer.objects.filter(~q).values_list("pk", flat=True)) == everyone - inside
        assert set(Customer.objects.filter(~~q).values_list("pk", flat=True)) == inside
