"""validate_definition: strict rules (decisions 8) with pointers and actionable messages."""

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation.engine import validate_definition
from tests.segmentation.engine_fixtures import REGISTRY

KEYS = {"high-value-customers", "vip list", "a-seg", "b-seg"}


def problems(definition, **kwargs):
    kwargs.setdefault("registry", REGISTRY)
    kwargs.setdefault("segment_keys", KEYS)
    return validate_definition(definition, **kwargs)


def pointers(definition, **kwargs):
    return [p["pointer"] for p in problems(definition, **kwargs)]


def group(*conditions, **extra):
    return {"match": "all", "conditions": list(conditions), **extra}


VALID = [
    {"match": "all", "conditions": []},
    {"match": "any", "conditions": [], "version": 1},
    group({"attribute": "email", "operator": "ends_with", "value": ".uk"}),
    group({"attribute": "country", "operator": "is_any_of", "value": ["PL", "gb"]}),
    group({"attribute": "gender", "operator": "is", "value": "Female"}),
    group({"attribute": "birth_date", "operator": "between", "value": ["1990-01-01", "1999-12-31"]}),
    group({"attribute": "age", "operator": "at_least", "value": 18}),
    group({"attribute": "created_at", "operator": "after", "value": "2026-01-01T10:00:00Z"}),
    group({"attribute": "last_seen_at", "operator": "less_than_days_ago", "value": 0}),
    group({"attribute": "tags", "operator": "is_none_of", "value": ["vip", "staff"]}),
    group({"attribute": "custom.vip", "operator": "is", "value": False}),
    group({"attribute": "custom.score", "operator": "between", "value": [1, 2.5]}),
    group({"attribute": "custom.items", "operator": "is_unknown"}),
    group({"attribute": "custom.0", "operator": "is", "value": 3}),
    group({"segment": "High-Value-Customers", "operator": "not_in"}),
    group(
        {
            "event": "Page Viewed",
            "within": {"between": ["2026-01-01", "2026-01-01"]},
            "where": [
                {"property": "context.device.type", "operator": "is", "value": "mobile"},
                {"property": "properties.price", "operator": "between", "value": [1, 2]},
                {"property": "properties.flag", "operator": "is", "value": True},
                {"property": "properties.my key", "operator": "is_any_of", "value": ["a", 1]},
            ],
            "count": {"operator": "at_least", "value": 5},
            "followed_by": {
                "event": "Order Completed",
                "where": [{"property": "properties.x", "operator": "is_unknown"}],
            },
        }
    ),
    group(
        {
            "event": "Order Completed",
            "aggregate": {"function": "sum", "property": "properties.revenue", "operator": "more_than", "value": 100},
        }
    ),
]


@pytest.mark.parametrize("definition", VALID)
def test_valid_definitions_have_no_problems(definition):
    before = copy.deepcopy(definition)
    assert problems(definition) == []
    assert definition == before  # never mutated


INVALID = [
    # (definition, expected pointer, words in the message)
    ([], "", "JSON object"),
    ({"match": "all"}, "", "match"),
    ({"match": "some", "conditions": []}, "/match", "all"),
    ({"match": "all", "conditions": {}}, "/conditions", "list"),
    ({"match": "all", "conditions": [], "negate": "yes"}, "/negate", "true or false"),
    ({"match": "all", "conditions": [], "version": 2}, "/version", "version"),
    ({"match": "all", "conditions": [], "version": True}, "/version", "version"),
    (group(group(version=1)), "/conditions/0/version", "top"),
    ({"match": "all", "conditions": [], "id": "x"}, "/id", "Unknown key"),
    (group({}), "/conditions/0", "exactly one"),
    (group("country"), "/conditions/0", "object"),
    (group({"attribute": "country", "segment": "x", "operator": "is"}), "/conditions/0", "both"),
    (group({"attribute": "shoe_size", "operator": "is", "value": "x"}), "/conditions/0/attribute", "shoe_size"),
    (group({"attribute": "custom.nope", "operator": "is", "value": "x"}), "/conditions/0/attribute", "custom.nope"),
    (group({"attribute": "country", "operator": "less_than", "value": 1}), "/conditions/0/operator", "country"),
    (group({"attribute": "country", "operator": "is", "value": "XX"}), "/conditions/0/value", "country code"),
    (group({"attribute": "country", "operator": "is_any_of", "value": ["PL", "Poland"]}), "/conditions/0/value/1", ""),
    (group({"attribute": "gender", "operator": "is", "value": "robot"}), "/conditions/0/value", "female"),
    (group({"attribute": "email", "operator": "is", "value": ""}), "/conditions/0/value", "empty"),
    (group({"attribute": "email", "operator": "is", "value": "   "}), "/conditions/0/value", "empty"),
    (group({"attribute": "email", "operator": "is", "value": "a\x00b"}), "/conditions/0/value", "NUL"),
    (group({"attribute": "email", "operator": "is", "value": 3}), "/conditions/0/value", "text"),
    (group({"attribute": "email", "operator": "is"}), "/conditions/0/value", "Enter a value"),
    (group({"attribute": "email", "operator": "has_any_value", "value": "x"}), "/conditions/0/value", "no value"),
    (group({"attribute": "custom.score", "operator": "less_than", "value": "10"}), "/conditions/0/value", "number"),
    (group({"attribute": "custom.score", "operator": "is", "value": True}), "/conditions/0/value", "number"),
    (group({"attribute": "custom.score", "operator": "is_any_of", "value": []}), "/conditions/0/value", "non-empty"),
    (
        group({"attribute": "custom.score", "operator": "is_any_of", "value": list(range(1001))}),
        "/conditions/0/value",
        "1000",
    ),
    (group({"attribute": "custom.score", "operator": "between", "value": [5, 1]}), "/conditions/0/value", "greater"),
    (group({"attribute": "custom.score", "operator": "between", "value": [1]}), "/conditions/0/value", "two"),
    (group({"attribute": "custom.vip", "operator": "is", "value": "true"}), "/conditions/0/value", "true or false"),
    (group({"attribute": "birth_date", "operator": "before", "value": "2026-13-01"}), "/conditions/0/value", "date"),
    (
        group({"attribute": "birth_date", "operator": "on", "value": "2026-01-01T10:00:00"}),
        "/conditions/0/value",
        "YYYY-MM-DD",
    ),
    (group({"attribute": "created_at", "operator": "after", "value": "yesterday"}), "/conditions/0/value", "date"),
    (
        group({"attribute": "created_at", "operator": "between", "value": ["2026-02-01", "2026-01-01T00:00:00"]}),
        "/conditions/0/value",
        "greater",
    ),
    (
        group({"attribute": "created_at", "operator": "less_than_days_ago", "value": 36501}),
        "/conditions/0/value",
        "36500",
    ),
    (group({"attribute": "created_at", "operator": "more_than_days_ago", "value": 1.5}), "/conditions/0/value", ""),
    (group({"attribute": "custom.items", "operator": "contains", "value": "x"}), "/conditions/0/operator", "list"),
    (group({"segment": "nope", "operator": "in"}), "/conditions/0/segment", "no segment"),
    (group({"segment": "vip list", "operator": "inside"}), "/conditions/0/operator", "in"),
    (group({"event": "", "operator": "x"}), "/conditions/0/event", "Name the event"),
    (group({"event": "Page Viewed", "within": {"last_days": -1}}), "/conditions/0/within/last_days", "0"),
    (group({"event": "Page Viewed", "within": {"last_days": 1, "last_hours": 2}}), "/conditions/0/within", "one"),
    (group({"event": "Page Viewed", "within": {"after": "2026-01-01x"}}), "/conditions/0/within/after", "date"),
    (group({"event": "Page Viewed", "count": {"operator": "at_least", "value": "5"}}), "/conditions/0/count/value", ""),
    (group({"event": "Page Viewed", "count": {"operator": "is", "value": -1}}), "/conditions/0/count/value", ""),
    (
        group({"event": "Page Viewed", "count": {"operator": "contains", "value": 1}}),
        "/conditions/0/count/operator",
        "",
    ),
    (
        group({"event": "Page Viewed", "where": [{"property": "revenue", "operator": "is", "value": 1}]}),
        "/conditions/0/where/0/property",
        "properties.",
    ),
    (
        group({"event": "Page Viewed", "where": [{"property": "properties..x", "operator": "is", "value": 1}]}),
        "/conditions/0/where/0/property",
        "",
    ),
    (
        group({"event": "Page Viewed", "where": [{"property": "properties.x", "operator": "before", "value": "a"}]}),
        "/conditions/0/where/0/operator",
        "",
    ),
    (
        group({"event": "Page Viewed", "where": [{"property": "properties.x", "operator": "is", "value": None}]}),
        "/conditions/0/where/0/value",
        "",
    ),
    (
        group(
            {
                "event": "Order Completed",
                "aggregate": {"function": "median", "property": "properties.revenue", "operator": "is", "value": 1},
            }
        ),
        "/conditions/0/aggregate/function",
        "sum",
    ),
    (
        group(
            {
                "event": "Order Completed",
                "aggregate": {"function": "sum", "property": "properties.revenue", "operator": "is", "value": 1},
                "count": {"operator": "is", "value": 1},
            }
        ),
        "/conditions/0",
        "count",
    ),
    (
        group(
            {
                "event": "Product Added",
                "followed_by": {"event": "Order Completed"},
                "not_followed_by": {"event": "Order Completed"},
            }
        ),
        "/conditions/0",
        "either",
    ),
    (
        group(
            {
                "event": "Product Added",
                "aggregate": {"function": "max", "property": "properties.price", "operator": "is", "value": 1},
                "followed_by": {"event": "Order Completed"},
            }
        ),
        "/conditions/0",
        "aggregate",
    ),
    (
        group({"event": "Product Added", "followed_by": {"event": "x", "within": {}}}),
        "/conditions/0/followed_by/within",
        "",
    ),
]


@pytest.mark.parametrize(("definition", "pointer", "words"), INVALID)
def test_invalid_definitions_report_a_pointer_and_a_sentence(definition, pointer, words):
    found = problems(definition)
    assert pointer in [p["pointer"] for p in found], found
    message = next(p["message"] for p in found if p["pointer"] == pointer)
    assert words in message
    assert message.endswith(".")


def test_count_may_go_with_a_sequence_key():
    definition = group(
        {"event": "Product Added", "count": {"operator": "at_least", "value": 2}, "not_followed_by": {"event": "X"}}
    )
    assert problems(definition) == []


def test_every_problem_is_reported_at_once():
    definition = group(
        {"attribute": "nope", "operator": "is", "value": 1},
        {"attribute": "email", "operator": "is"},
        {"segment": "missing", "operator": "in"},
        match="both",
    )
    assert sorted(pointers(definition)) == [
        "/conditions/0/attribute",
        "/conditions/1/value",
        "/conditions/2/segment",
        "/match",
    ]


def test_depth_limit_is_ten():
    inner = group()
    for _ in range(9):
        inner = group(inner)
    assert problems(inner) == []  # 10 levels
    assert "Groups are nested" in problems(group(inner))[0]["message"]


def test_node_limit_is_200():
    conditions = [{"attribute": "email", "operator": "has_any_value"}] * 199
    assert problems(group(*conditions)) == []
    found = problems(group(*conditions, {"attribute": "email", "operator": "has_any_value"}))
    assert [p["pointer"] for p in found] == [""]
    assert "limit is 200" in found[0]["message"]


def test_size_limit_is_64_kb():
    definition = group(*[{"attribute": "email", "operator": "is", "value": "x" * 900}] * 80)
    found = problems(definition)
    assert found[0]["pointer"] == "" and "64 KB" in found[0]["message"]


def test_non_json_values_are_refused_without_raising():
    assert problems(group({"attribute": "custom.score", "operator": "is", "value": float("nan")}))
    assert problems({"match": "all", "conditions": [object()]})
    assert problems(group({"attribute": "email", "operator": "is", "value": "\ud800"}))


def test_segment_references_that_loop_back_are_refused():
    graph = {"a-seg": {"b-seg"}, "b-seg": {"me-seg"}}
    keys = KEYS | {"me-seg"}
    found = problems(
        group({"segment": "A-seg", "operator": "in"}), segment_keys=keys, segment_key="me-seg", segment_graph=graph
    )
    assert found[0]["pointer"] == "/conditions/0/segment"
    assert "me-seg" in found[0]["message"]
    itself = problems(
        group({"segment": "ME-SEG", "operator": "in"}), segment_keys=keys, segment_key="me-seg", segment_graph={}
    )
    assert "itself" in itself[0]["message"]
    assert (
        problems(
            group({"segment": "b-seg", "operator": "in"}), segment_keys=keys, segment_key="x-seg", segment_graph=graph
        )
        == []
    )


@pytest.mark.django_db
def test_registry_and_segment_keys_load_from_the_database():
    from customers.models import AttributeDefinition
    from segmentation.models import Segment

    AttributeDefinition.objects.create(key="custom.plan", label="Plan", kind="custom", type="string")
    Segment.objects.create(key="Big-Spenders", name="Big", kind="static")
    definition = group(
        {"attribute": "custom.plan", "operator": "is", "value": "gold"}, {"segment": "big-spenders", "operator": "in"}
    )
    assert validate_definition(definition) == []
    assert validate_definition(group({"attribute": "custom.other", "operator": "has_any_value"}))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
NODE_KEYS = ["match", "conditions", "negate", "attribute", "operator", "value", "event", "where", "within", "count"]
nodes = st.recursive(
    st.dictionaries(st.sampled_from(NODE_KEYS), json_values, max_size=4),
    lambda children: st.fixed_dictionaries(
        {"match": st.sampled_from(["all", "any", "x"]), "conditions": st.lists(children, max_size=3)}
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(definition=json_values | nodes)
def test_validator_never_raises_and_never_mutates(definition):
    before = copy.deepcopy(definition)
    found = problems(definition)
    assert isinstance(found, list)
    assert all(set(p) == {"pointer", "message"} and p["message"] for p in found)
    assert definition == before
    if not isinstance(definition, dict) or "conditions" not in definition:
        assert found
