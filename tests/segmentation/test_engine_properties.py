"""Property tests: on random data and random valid definitions, the SQL compiler selects exactly
the customers the Python evaluator accepts, on whichever database the suite runs against.

Values are drawn from small pools full of edge cases (unknowns, wrong JSON types, numeric strings,
LIKE wildcards, Unicode case, window edges, timestamp ties, future events) so collisions happen.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.attributes import OPERATORS_BY_TYPE
from customers.models import Customer, Event, Tag
from segmentation.engine import validate_definition
from segmentation.engine import values as V
from segmentation.engine.fields import BUILTIN_FIELDS
from segmentation.engine.schema import PROPERTY_OPERATORS
from segmentation.models import Membership, Segment
from tests.segmentation.engine_fixtures import NOW, REGISTRY, py_members, sql_members

pytestmark = pytest.mark.django_db

SETTINGS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
)
SEGMENT_KEYS = ["seg-a", "Seg-B"]
MISSING = "<missing>"


def _t(**kwargs):
    return NOW + dt.timedelta(**kwargs)


# ------------------------------------------------------------------------------
# Data pools
# ------------------------------------------------------------------------------
INSTANTS = [
    _t(days=-40),
    _t(days=-30),
    _t(days=-7),
    _t(days=-1),
    _t(days=-1, seconds=1),
    _t(hours=-2),
    NOW,
    _t(hours=1),  # future: ignored everywhere
    dt.datetime(2026, 6, 14, tzinfo=dt.UTC),
    dt.datetime(2026, 6, 13, 23, 59, 59, 999999, tzinfo=dt.UTC),
]
TEXTS = ["Ann", "ANN", "Émile", "émile", "bob", "Kraków", "a_b", "50%", "x"]
TEXT_VALUES = ["ann", "AN", "n", "é", "ÉMILE", "%", "_", "kra", "b", "50%", "a_b", "x"]
EMAILS = ["ann@shop.uk", "bob@mail.com", "c@x.pl"]
EMAIL_VALUES = ["ann@shop.uk", ".uk", "@", "ANN@SHOP.UK", "bob"]
COUNTRIES = ["PL", "GB", "DE"]
BIRTH_DATES = [
    dt.date(2000, 2, 29),
    dt.date(2000, 6, 15),
    dt.date(2000, 6, 16),
    dt.date(2000, 6, 14),
    dt.date(1990, 1, 1),
    dt.date(2026, 6, 15),
]
DATE_VALUES = ["2000-02-29", "2000-06-15", "1990-01-01", "2026-06-14", "2026-06-15"]
INSTANT_VALUES = [
    "2026-06-14",
    "2026-06-15",
    "2026-05-16",
    "2026-06-14T12:00:00Z",
    "2026-06-13T23:59:59.999999Z",
    "2026-06-15T12:00:00+02:00",
]
NUMBERS = [0, 1, 2, 5, 0.1, 0.3, 10, 12.5, 30, 120.5, 150.5, -5]
AGE_VALUES = [0, 25, 26, 26.5, 27, 36]
DAYS = [0, 1, 2, 7, 30, 40]
TAGS = ["VIP", "vip-gold", "staff", "Newsletter", "gold"]
TAG_VALUES = ["vip", "VIP", "gold", "staff", "news", "v", "x"]
EVENT_NAMES = ["Page Viewed", "Order Completed", "Product Added"]
PROPERTY_VALUES = [10, 0.1, "0.2", "30", "abc", "02134", True, None, 120.5, -5, "Shoes", "shoes", "BAGS", ""]
PATHS = ["properties.revenue", "properties.category", "context.device.type"]

maybe = lambda pool: st.sampled_from([None, *pool])  # noqa: E731


@st.composite
def custom_values(draw):
    custom = {}
    choices = {
        "plan": [None, "Gold", "gold", "", "silver", 5],
        "score": [None, 5, 12.5, 0.1, "7", True, -5],
        "vip": [None, True, False, "true"],
        "signup": [None, "2026-06-14", "2000-02-29", "2026-06-15"],
        "last_login": [
            None,
            "2026-06-14T00:00:00.000000Z",
            "2026-06-13T23:59:59.999999Z",
            "2026-06-15T12:00:00.000000Z",
        ],
        "items": [None, [], ["a"]],
        "0": [None, 1, 2],
        "address.city": [None, "Łódź", "ŁÓDŹ"],
    }
    for key, pool in choices.items():
        value = draw(st.sampled_from([MISSING, *pool]))
        if value != MISSING:
            custom[key] = value
    return custom


@st.composite
def customer_rows(draw):
    return {
        "email": draw(maybe(EMAILS)),
        "first_name": draw(maybe(TEXTS)),
        "city": draw(maybe(TEXTS)),
        "country": draw(maybe(COUNTRIES)),
        "gender": draw(maybe(["female", "male", "other"])),
        "birth_date": draw(maybe(BIRTH_DATES)),
        "created_at": draw(st.sampled_from(INSTANTS)),
        "updated_at": draw(st.sampled_from(INSTANTS)),
        "first_seen_at": draw(maybe(INSTANTS)),
        "last_seen_at": draw(maybe(INSTANTS)),
        "custom": draw(custom_values()),
        "tags": draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
    }


@st.composite
def event_rows(draw, n_customers):
    props = {}
    for key in ("revenue", "category"):
        value = draw(st.sampled_from([MISSING, *PROPERTY_VALUES]))
        if value != MISSING:
            props[key] = value
    device = draw(st.sampled_from([MISSING, "mobile", "Mobile", "desktop", None]))
    timestamp = draw(st.sampled_from(INSTANTS))
    return {
        "customer": draw(st.integers(0, n_customers - 1)),
        "name": draw(st.sampled_from(EVENT_NAMES)),
        "timestamp": timestamp,
        "received_at": timestamp + dt.timedelta(seconds=draw(st.sampled_from([0, 0, 1, -1]))),
        "properties": props,
        "context": {} if device == MISSING else {"device": {"type": device}},
    }


@st.composite
def datasets(draw):
    customers = draw(st.lists(customer_rows(), min_size=3, max_size=8))
    events = draw(st.lists(event_rows(len(customers)), min_size=6, max_size=30))
    segments = {key: draw(st.sets(st.integers(0, len(customers) - 1))) for key in SEGMENT_KEYS}
    return customers, events, segments


# ------------------------------------------------------------------------------
# Definition strategies (always valid)
# ------------------------------------------------------------------------------
def _values_for(field_key: str, type_: str):
    if field_key == "email":
        return EMAIL_VALUES
    if field_key == "country":
        return COUNTRIES + ["us"]
    if field_key == "gender":
        return ["female", "MALE", "other"]
    if field_key == "tags":
        return TAG_VALUES
    if field_key == "age":
        return AGE_VALUES
    if type_ == "number":
        return NUMBERS
    if type_ == "date":
        return DATE_VALUES
    if type_ == "datetime":
        return INSTANT_VALUES
    return TEXT_VALUES


@st.composite
def operator_value(draw, operators, field_key: str, type_: str):
    operator = draw(st.sampled_from(operators))
    pool = _values_for(field_key, type_)
    if operator in ("has_any_value", "is_unknown"):
        return operator, MISSING
    if operator in ("is_any_of", "is_none_of"):
        return operator, draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    if operator in ("less_than_days_ago", "more_than_days_ago"):
        return operator, draw(st.sampled_from(DAYS))
    if operator == "between":
        pair = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2))
        if type_ == "datetime":
            return operator, sorted(pair, key=_start)
        return operator, sorted(pair)
    if operator in ("starts_with", "ends_with", "contains", "does_not_contain") and field_key != "tags":
        return operator, draw(st.sampled_from(TEXT_VALUES if field_key != "email" else EMAIL_VALUES))
    if type_ == "boolean":
        return operator, draw(st.booleans())
    return operator, draw(st.sampled_from(pool))


def _start(value: str) -> dt.datetime:
    return V.day_start(V.to_date(value)) if V.is_date_only(value) else V.instant(value)


def _with_value(node: dict, operator: str, value) -> dict:
    node["operator"] = operator
    if value != MISSING:
        node["value"] = value
    return node


@st.composite
def attribute_conditions(draw):
    fields = {key: f.type for key, f in BUILTIN_FIELDS.items() if key != "external_id"}
    fields.update({k: v for k, v in REGISTRY.items()})
    name = draw(st.sampled_from(sorted(fields)))
    type_ = fields[name]
    operators = (
        ["has_any_value", "is_unknown"] if name.startswith("custom.") and type_ == "list" else OPERATORS_BY_TYPE[type_]
    )
    operator, value = draw(operator_value(operators, name, type_))
    return _with_value({"attribute": name}, operator, value)


@st.composite
def property_filters(draw):
    path = draw(st.sampled_from(PATHS))
    operator = draw(st.sampled_from(PROPERTY_OPERATORS))
    node = {"property": path, "operator": operator}
    scalars = [v for v in PROPERTY_VALUES if v not in (None, "")] + ["mobile", "MOBILE", "sho", "%"]
    if operator in ("has_any_value", "is_unknown"):
        return node
    if operator in ("is", "is_not"):
        node["value"] = draw(st.sampled_from(scalars))
    elif operator in ("is_any_of", "is_none_of"):
        node["value"] = draw(
            st.lists(st.sampled_from([v for v in scalars if not isinstance(v, bool)]), min_size=1, max_size=3)
        )
    elif operator == "between":
        node["value"] = sorted(draw(st.lists(st.sampled_from(NUMBERS), min_size=2, max_size=2)))
    elif operator in ("less_than", "more_than", "at_most", "at_least"):
        node["value"] = draw(st.sampled_from(NUMBERS))
    else:
        node["value"] = draw(st.sampled_from(["sho", "S", "mobile", "%", "_", "0.", "abc"]))
    return node


NUM_OPS = ["is", "is_not", "less_than", "more_than", "at_most", "at_least", "between"]


@st.composite
def num_condition(draw, pool):
    operator = draw(st.sampled_from(NUM_OPS))
    if operator == "between":
        return {"operator": operator, "value": sorted(draw(st.lists(st.sampled_from(pool), min_size=2, max_size=2)))}
    return {"operator": operator, "value": draw(st.sampled_from(pool))}


@st.composite
def windows(draw):
    kind = draw(st.sampled_from(["last_days", "last_hours", "after", "before", "between"]))
    if kind in ("last_days", "last_hours"):
        return {kind: draw(st.sampled_from(DAYS + [24, 26]))}
    if kind == "between":
        pair = draw(st.lists(st.sampled_from(["2026-06-13", "2026-06-14", "2026-05-16"]), min_size=2, max_size=2))
        return {kind: sorted(pair)}
    return {kind: draw(st.sampled_from(INSTANT_VALUES))}


@st.composite
def event_conditions(draw):
    node = {"event": draw(st.sampled_from(EVENT_NAMES))}
    if draw(st.booleans()):
        node["where"] = draw(st.lists(property_filters(), max_size=1))
    if draw(st.booleans()):
        node["within"] = draw(windows())
    mode = draw(
        st.sampled_from(["performed", "count", "count", "aggregate", "aggregate", "sequence", "count+sequence"])
    )
    if "sequence" in mode:
        key = draw(st.sampled_from(["followed_by", "not_followed_by"]))
        follower = {"event": draw(st.sampled_from(EVENT_NAMES))}
        if draw(st.booleans()):
            follower["where"] = draw(st.lists(property_filters(), min_size=1, max_size=1))
        node[key] = follower
    if mode.startswith("count"):
        node["count"] = draw(num_condition([0, 1, 2, 3]))
    if mode == "aggregate":
        spec = {"function": draw(st.sampled_from(["sum", "avg", "min", "max"])), "property": "properties.revenue"}
        node["aggregate"] = {**spec, **draw(num_condition(NUMBERS + [40.5, 0.3, 150.6]))}
    return node


leaves = st.one_of(
    attribute_conditions(),
    event_conditions(),
    st.builds(
        lambda k, o: {"segment": k, "operator": o}, st.sampled_from(SEGMENT_KEYS), st.sampled_from(["in", "not_in"])
    ),
)


def groups(children):
    return st.builds(
        lambda match, conditions, negate: {
            "match": match,
            "conditions": conditions,
            **({"negate": True} if negate else {}),
        },
        st.sampled_from(["all", "any"]),
        st.lists(children, max_size=3),
        st.booleans(),
    )


definitions = groups(st.recursive(leaves, groups, max_leaves=6))


# ------------------------------------------------------------------------------
# The oracle check
# ------------------------------------------------------------------------------
def _load(dataset):
    customers, events, segments = dataset
    created = Customer.objects.bulk_create(
        [Customer(**{k: v for k, v in row.items() if k != "tags"}) for row in customers]
    )
    tags = {name: Tag.objects.get_or_create(name=name)[0] for name in TAGS}
    through = Customer.tags.through
    through.objects.bulk_create(
        [
            through(customer_id=c.pk, tag_id=tags[name].pk)
            for c, row in zip(created, customers, strict=True)
            for name in row["tags"]
        ]
    )
    Event.objects.bulk_create([Event(**{**row, "customer": created[row["customer"]]}) for row in events])
    for key, indexes in segments.items():
        seg = Segment.objects.create(key=key, name=key, kind=Segment.Kind.STATIC)
        Membership.objects.bulk_create([Membership(segment=seg, customer=created[i], entered_at=NOW) for i in indexes])


def _check(dataset, definition_list):
    with transaction.atomic():
        _load(dataset)
        for definition in definition_list:
            assert (
                validate_definition(definition, registry=REGISTRY, segment_keys={k.lower() for k in SEGMENT_KEYS}) == []
            )
            assert sql_members(definition) == py_members(definition), definition
        transaction.set_rollback(True)


@SETTINGS
@given(
    dataset=datasets(),
    definition_list=st.lists(
        st.builds(lambda c: {"match": "all", "conditions": [c]}, attribute_conditions()), min_size=1, max_size=6
    ),
)
def test_attribute_conditions_agree(dataset, definition_list):
    _check(dataset, definition_list)


@SETTINGS
@given(
    dataset=datasets(),
    definition_list=st.lists(
        st.builds(lambda c: {"match": "all", "conditions": [c]}, event_conditions()), min_size=1, max_size=6
    ),
)
def test_event_conditions_agree(dataset, definition_list):
    _check(dataset, definition_list)


@SETTINGS
@given(dataset=datasets(), definition_list=st.lists(definitions, min_size=1, max_size=3))
def test_nested_definitions_agree(dataset, definition_list):
    _check(dataset, definition_list)
