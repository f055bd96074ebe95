"""Plain-English summaries of segment definitions, for marketers.

`summarize` describes a whole (validated) definition: "Customers in Poland who spent more than
100 in total on Order Completed". Nested groups read as "all of: ...; any of: ...". Date
operators are labelled "(UTC)" (decisions 36).
"""

from __future__ import annotations

import pycountry

from customers.attributes import OPERATOR_LABELS, PROFILE_ATTRIBUTES, SYSTEM_ATTRIBUTES

LABELS = {key: label for key, label, *_ in (*PROFILE_ATTRIBUTES, *SYSTEM_ATTRIBUTES)}
DATE_OPERATORS = {"before", "after", "on", "between", "less_than_days_ago", "more_than_days_ago"}
NUM_WORDS = {
    "is": "exactly",
    "is_not": "other than",
    "less_than": "less than",
    "more_than": "more than",
    "at_most": "at most",
    "at_least": "at least",
}
AGGREGATE_WORDS = {"sum": "a total", "avg": "an average", "min": "a minimum", "max": "a maximum"}


def summarize(definition: dict) -> str:
    """One sentence describing who the definition selects."""
    conditions = definition.get("conditions", [])
    if not conditions:
        return "Nobody" if definition.get("negate") else "Everyone"
    if not definition.get("negate") and definition.get("match") == "all":
        parts = [_clause(c) for c in conditions]
        # "Customers in Poland who spent ...": place clauses read without a joining "and".
        places = [p for p in parts if p.startswith("in ")]
        rest = [p for p in parts if not p.startswith("in ")]
        return " ".join(["Customers", *[" and ".join(x) for x in (places, rest) if x]])
    return "Customers matching " + describe(definition)


def describe(node: dict) -> str:
    """A phrase for any node (used by summarize and explain)."""
    if "conditions" in node:
        if not node["conditions"]:
            text = "everyone"
        else:
            text = f"{node['match']} of: " + "; ".join(describe(c) for c in node["conditions"])
        return f"not ({text})" if node.get("negate") else f"({text})" if "; " in text else text
    if "segment" in node:
        return f"{'in' if node['operator'] == 'in' else 'not in'} segment “{node['segment']}”"
    if "attribute" in node:
        return _attribute(node)
    if "event" in node:
        return _event(node)
    return "an unknown condition"


def _clause(node: dict) -> str:
    """A condition worded to follow "Customers ..." ("in Poland", "who performed ...")."""
    if "attribute" in node and node["attribute"] == "country" and node["operator"] == "is":
        return f"in {_country(node['value'])}"
    if "attribute" in node and node["attribute"] == "total_spent" and node["operator"] in NUM_WORDS:
        return f"who spent {NUM_WORDS[node['operator']]} {_value(node['value'])} in total"
    if "event" in node or (node.get("attribute") == "tags" and node["operator"] not in ("has_any_value", "is_unknown")):
        return "who " + describe(node)
    if "segment" in node or "conditions" in node:
        return "who are " + describe(node) if "segment" in node else "matching " + describe(node)
    return "whose " + _attribute(node)


def _attribute(node: dict) -> str:
    name = node["attribute"]
    label = f"{name[len('custom.') :]} (custom)" if name.startswith("custom.") else LABELS[name]
    operator = node["operator"]
    value = node.get("value")
    if operator in ("has_any_value", "is_unknown"):
        return f"{label.lower()} {OPERATOR_LABELS[operator]}"
    if name == "tags":
        return _tags(operator, value)
    return f"{label.lower()} {_operator_phrase(operator, value)}"


def _tags(operator: str, value) -> str:
    return {
        "contains": lambda: f"are tagged “{value}”",
        "does_not_contain": lambda: f"are not tagged “{value}”",
        "starts_with": lambda: f"have a tag starting with “{value}”",
        "ends_with": lambda: f"have a tag ending with “{value}”",
        "is_any_of": lambda: "have any of the tags " + _list(value),
        "is_none_of": lambda: "have none of the tags " + _list(value),
    }[operator]()


def _operator_phrase(operator: str, value) -> str:
    suffix = " (UTC)" if operator in DATE_OPERATORS else ""
    if operator in ("less_than_days_ago", "more_than_days_ago"):
        more_less = "less" if operator.startswith("less") else "more"
        return f"is {more_less} than {value} days ago{suffix}"
    if operator == "between":
        return f"is between {_value(value[0])} and {_value(value[1])}{suffix}"
    if operator in ("is_any_of", "is_none_of"):
        return f"{OPERATOR_LABELS[operator]} {_list(value)}"
    return f"{OPERATOR_LABELS[operator]} {_value(value)}{suffix}"


def _event(node: dict) -> str:
    name = f"“{node['event']}”" if "aggregate" not in node else node["event"]
    if "aggregate" in node:
        agg = node["aggregate"]
        prop = agg["property"].split(".", 1)[1]
        amount = _num_phrase(agg["operator"], agg["value"])
        if prop == "revenue" and agg["function"] == "sum":
            text = f"spent {amount} in total on {name}"
        else:
            text = f"had {AGGREGATE_WORDS[agg['function']]} {prop} {amount} over {name} events"
    elif "count" in node:
        count = node["count"]
        if count["operator"] == "is" and count["value"] == 0:
            text = f"did not perform {name}"
        else:
            text = f"performed {name} {_num_phrase(count['operator'], count['value'])} times"
    else:
        text = f"performed {name}"
    if node.get("where"):
        text += " where " + " and ".join(_filter(f) for f in node["where"])
    for key, word in (("followed_by", "followed by"), ("not_followed_by", "not followed by")):
        if key in node:
            text += f" {word} “{node[key]['event']}”"
            if node[key].get("where"):
                text += " where " + " and ".join(_filter(f) for f in node[key]["where"])
    if "within" in node:
        text += " " + _window(node["within"])
    return text


def _filter(item: dict) -> str:
    prop = item["property"]
    if item["operator"] in ("has_any_value", "is_unknown"):
        return f"{prop} {OPERATOR_LABELS[item['operator']]}"
    return f"{prop} {_operator_phrase(item['operator'], item.get('value'))}"


def _window(window: dict) -> str:
    (kind, value), *_ = window.items()
    if kind == "last_days":
        return f"in the last {value} day{'s' if value != 1 else ''}"
    if kind == "last_hours":
        return f"in the last {value} hour{'s' if value != 1 else ''}"
    if kind == "between":
        return f"between {value[0]} and {value[1]} (UTC)"
    return f"{kind} {value} (UTC)"


def _num_phrase(operator: str, value) -> str:
    if operator == "between":
        return f"between {_value(value[0])} and {_value(value[1])}"
    return f"{NUM_WORDS[operator]} {_value(value)}"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"“{value}”"
    return str(value)


def _list(values) -> str:
    return ", ".join(_value(v) for v in values)


def _country(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code.upper())
    return getattr(country, "common_name", None) or getattr(country, "name", code) if country else code
