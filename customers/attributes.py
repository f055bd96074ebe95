"""Built-in attributes and the operators each attribute type allows.

This module is the single source for what a definition may name; the registry table mirrors
it (synced after migrations) and adds custom attributes. The segmentation engine, the REST
`/api/attributes/` and the admin builder all read it.
"""

PROFILE_ATTRIBUTES = [
    ("email", "Email", "string", "Email address (lower-cased)."),
    ("phone", "Phone", "string", "Phone number."),
    ("first_name", "First name", "string", ""),
    ("last_name", "Last name", "string", ""),
    ("gender", "Gender", "string", "female, male, other, or unknown."),
    ("birth_date", "Birth date", "date", ""),
    ("country", "Country", "string", "ISO 3166-1 alpha-2 code, such as PL or GB."),
    ("city", "City", "string", ""),
    ("language", "Language", "string", ""),
    ("source", "Source", "string", "Where the profile came from (a trait or CSV column)."),
    ("external_id", "External ID", "string", "Your system's user id."),
]

SYSTEM_ATTRIBUTES = [
    ("created_at", "Created", "datetime", "When the profile was created."),
    ("updated_at", "Updated", "datetime", "When attributes or tags last changed."),
    ("first_seen_at", "First seen", "datetime", "Earliest event or identify timestamp."),
    ("last_seen_at", "Last seen", "datetime", "Latest event or identify timestamp."),
    ("age", "Age", "number", "Whole years since birth date."),
    ("event_count", "Number of events", "number", "Every event of the profile."),
    ("orders_count", "Number of orders", "number", "Count of Order Completed events."),
    ("total_spent", "Total spent", "number", "Sum of revenue of Order Completed events."),
    ("last_order_at", "Last order", "datetime", "Time of the latest Order Completed event."),
    ("tags", "Tags", "list", "Tag names."),
]

TYPES = ["string", "number", "boolean", "date", "datetime", "list"]

NO_VALUE_OPERATORS = {"has_any_value", "is_unknown"}
LIST_VALUE_OPERATORS = {"is_any_of", "is_none_of"}
NEGATIVE_OPERATORS = {"is_not", "is_none_of", "does_not_contain"}
STRING_OPERATORS = ["starts_with", "ends_with", "contains", "does_not_contain"]
NUMBER_OPERATORS = ["less_than", "more_than", "at_most", "at_least"]
DATE_OPERATORS = ["before", "after", "on", "less_than_days_ago", "more_than_days_ago"]

OPERATORS_BY_TYPE = {
    "string": ["is", "is_not", "is_any_of", "is_none_of", *STRING_OPERATORS, "has_any_value", "is_unknown"],
    "number": ["is", "is_not", "is_any_of", "is_none_of", *NUMBER_OPERATORS, "between", "has_any_value", "is_unknown"],
    "boolean": ["is", "is_not", "has_any_value", "is_unknown"],
    "date": ["is", "is_not", "between", *DATE_OPERATORS, "has_any_value", "is_unknown"],
    "datetime": ["between", *DATE_OPERATORS, "has_any_value", "is_unknown"],
    "list": ["is_any_of", "is_none_of", *STRING_OPERATORS, "has_any_value", "is_unknown"],
}

NUM_OPS = ["is", "is_not", "less_than", "more_than", "at_most", "at_least", "between"]

OPERATOR_LABELS = {
    "is": "is",
    "is_not": "is not",
    "is_any_of": "is any of",
    "is_none_of": "is none of",
    "has_any_value": "has any value",
    "is_unknown": "is unknown",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "contains": "contains",
    "does_not_contain": "does not contain",
    "less_than": "is less than",
    "more_than": "is more than",
    "at_most": "is at most",
    "at_least": "is at least",
    "between": "is between",
    "before": "is before",
    "after": "is after",
    "on": "is on",
    "less_than_days_ago": "is less than N days ago",
    "more_than_days_ago": "is more than N days ago",
}


def builtin_attributes():
    """(key, label, kind, type, description) for every built-in attribute."""
    for key, label, type_, desc in PROFILE_ATTRIBUTES:
        yield key, label, "profile", type_, desc
    for key, label, type_, desc in SYSTEM_ATTRIBUTES:
        yield key, label, "system", type_, desc


BUILTIN_KEYS = {key for key, *_ in builtin_attributes()}
