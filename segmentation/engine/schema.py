"""Validation of segment definitions (segment-definitions.md, decisions 8).

`validate_definition` returns every problem at once as {"pointer", "message"}: a JSON pointer
relative to the definition root ("" for the whole definition) and a sentence a marketer can act
on. It never raises for bad input and never mutates it. A definition with no problems is safe
to hand to the compiler and the evaluator.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import TypedDict

from customers.attributes import LIST_VALUE_OPERATORS, NO_VALUE_OPERATORS, NUM_OPS, OPERATOR_LABELS
from customers.normalize import DATE_RE, DATETIME_RE, NormalizationError, check_clean, is_country_code, normalize_text

from . import values as V
from .fields import CUSTOM_PREFIX, field_for, load_registry, load_segment_graph, load_segment_keys

MAX_DEPTH = 10
MAX_NODES = 200
MAX_BYTES = 64 * 1024
MAX_LIST = 1000
MAX_DAYS = 36500
MAX_TEXT = 1000
GENDERS = {"female", "male", "other"}
NODE_KINDS = ("conditions", "attribute", "event", "segment")
GROUP_KEYS = {"match", "conditions", "negate"}
ATTRIBUTE_KEYS = {"attribute", "operator", "value"}
EVENT_KEYS = {"event", "where", "within", "count", "aggregate", "followed_by", "not_followed_by"}
SEGMENT_KEYS = {"segment", "operator"}
FILTER_KEYS = {"property", "operator", "value"}
FOLLOWER_KEYS = {"event", "where"}
WINDOW_KINDS = ("last_days", "last_hours", "after", "before", "between")
PROPERTY_OPERATORS = [
    "is",
    "is_not",
    "is_any_of",
    "is_none_of",
    "starts_with",
    "ends_with",
    "contains",
    "does_not_contain",
    "less_than",
    "more_than",
    "at_most",
    "at_least",
    "between",
    "has_any_value",
    "is_unknown",
]
TEXT_OPERATORS = {"starts_with", "ends_with", "contains", "does_not_contain"}
COMPARE_OPERATORS = {"less_than", "more_than", "at_most", "at_least"}
DAYS_OPERATORS = {"less_than_days_ago", "more_than_days_ago"}
INSTANT_OPERATORS = {"before", "after", "on"}
PATH_PART = re.compile(r"[A-Za-z0-9_\-]+( [A-Za-z0-9_\-]+)*")
TYPE_NAMES = {
    "string": "text",
    "number": "number",
    "boolean": "true/false",
    "date": "date",
    "datetime": "date and time",
    "list": "list",
}


class Problem(TypedDict):
    pointer: str
    message: str


def validate_definition(
    definition,
    *,
    registry: dict[str, str] | None = None,
    segment_keys: set[str] | None = None,
    segment_key: str | None = None,
    segment_graph: dict[str, set[str]] | None = None,
) -> list[Problem]:
    """Every problem of a definition; an empty list means valid.

    registry: {"custom.plan": "string", ...}; None loads the attribute registry.
    segment_keys: lower-cased existing segment keys; None loads them.
    segment_key / segment_graph: the key of the segment being saved and {lower key: lower keys
    it references}, to refuse references that lead back to it (None loads the graph).
    Loading happens only when the definition needs it.
    """
    validator = _Validator(registry, segment_keys, segment_key, segment_graph)
    try:
        validator.run(definition)
    except Exception as exc:  # pragma: no cover - a bug here must not turn into a 500
        validator.add("", f"The definition could not be checked ({exc.__class__.__name__}).")
    return validator.problems


def _ptr(pointer: str, *parts) -> str:
    for part in parts:
        pointer += "/" + str(part).replace("~", "~0").replace("/", "~1")
    return pointer


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and math.isfinite(value)
    )


def _label(name: str) -> str:
    return f"“{OPERATOR_LABELS.get(name, name)}”"


class _Validator:
    def __init__(self, registry, segment_keys, segment_key, segment_graph):
        self.problems: list[Problem] = []
        self._registry = registry
        self._segment_keys = segment_keys
        self.segment_key = segment_key.lower() if isinstance(segment_key, str) else None
        self._segment_graph = segment_graph
        self.nodes = 0

    def add(self, pointer: str, message: str) -> None:
        self.problems.append({"pointer": pointer, "message": message})

    @property
    def registry(self) -> dict[str, str]:
        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    @property
    def segment_keys(self) -> set[str]:
        if self._segment_keys is None:
            self._segment_keys = load_segment_keys()
        return {k.lower() for k in self._segment_keys}

    @property
    def segment_graph(self) -> dict[str, set[str]]:
        if self._segment_graph is None:
            self._segment_graph = load_segment_graph()
        return self._segment_graph

    # -- structure ----------------------------------------------------------------------------
    def run(self, definition) -> None:
        if not isinstance(definition, dict):
            self.add("", "The definition must be a JSON object with “match” and “conditions”.")
            return
        try:
            size = len(json.dumps(definition, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except (TypeError, ValueError):
            self.add("", "The definition must contain only JSON values (text, numbers, true/false, lists, objects).")
            return
        except UnicodeEncodeError:
            self.add("", "The definition contains invalid Unicode (an unpaired surrogate).")
            return
        if size > MAX_BYTES:
            self.add("", f"The definition is {size // 1024} KB; the limit is 64 KB. Simplify it or split it up.")
            return
        if "conditions" not in definition:
            self.add("", "The definition must be a group with “match” and “conditions”.")
        if "version" in definition and not (_is_int(definition["version"]) and definition["version"] == 1):
            self.add("/version", "The only definition version is 1; remove “version” or set it to 1.")
        self.node(definition, "", depth=1, top=True)
        if self.nodes > MAX_NODES:
            self.add("", f"The definition has {self.nodes} conditions and groups; the limit is {MAX_NODES}.")

    def node(self, node, pointer: str, *, depth: int, top: bool = False) -> None:
        self.nodes += 1
        if not isinstance(node, dict):
            self.add(pointer, "Each condition must be a JSON object.")
            return
        kinds = [k for k in NODE_KINDS if k in node]
        if not kinds:
            if not top:
                self.add(
                    pointer, "Each condition needs exactly one of “conditions”, “attribute”, “event” or “segment”."
                )
            return
        if len(kinds) > 1:
            names = " and ".join(f"“{k}”" for k in kinds)
            self.add(pointer, f"A condition can't have both {names}; keep only one (or use a group).")
            return
        kind = kinds[0]
        allowed = {"conditions": GROUP_KEYS, "attribute": ATTRIBUTE_KEYS, "event": EVENT_KEYS, "segment": SEGMENT_KEYS}
        self.unknown_keys(node, pointer, allowed[kind] | ({"version"} if top else set()))
        if "version" in node and not top:
            self.add(_ptr(pointer, "version"), "“version” is only allowed at the top of the definition.")
        getattr(self, kind)(node, pointer, depth)

    def unknown_keys(self, node: dict, pointer: str, allowed: set[str]) -> None:
        for key in node:
            if key not in allowed and key != "version":
                self.add(_ptr(pointer, key), f"Unknown key “{key}”; remove it.")

    def conditions(self, node: dict, pointer: str, depth: int) -> None:
        if node.get("match") not in ("all", "any"):
            self.add(_ptr(pointer, "match"), "Choose whether “all” or “any” of the conditions must match.")
        if "negate" in node and not isinstance(node["negate"], bool):
            self.add(_ptr(pointer, "negate"), "“negate” must be true or false.")
        children = node["conditions"]
        if not isinstance(children, list):
            self.add(_ptr(pointer, "conditions"), "“conditions” must be a list of conditions.")
            return
        if depth > MAX_DEPTH:
            self.add(pointer, f"Groups are nested more than {MAX_DEPTH} levels deep; flatten the definition.")
            return
        for i, child in enumerate(children):
            if self.nodes > MAX_NODES:
                return
            self.node(child, _ptr(pointer, "conditions", i), depth=depth + 1)

    def segment(self, node: dict, pointer: str, depth: int) -> None:
        key = node["segment"]
        if node.get("operator") not in ("in", "not_in"):
            self.add(_ptr(pointer, "operator"), "Choose “in” or “not_in” for a segment condition.")
        if not isinstance(key, str) or not key.strip():
            self.add(_ptr(pointer, "segment"), "Name the segment by its key.")
            return
        lowered = key.lower()
        if self.segment_key is not None and lowered == self.segment_key:
            self.add(_ptr(pointer, "segment"), "A segment can't refer to itself.")
            return
        if lowered not in self.segment_keys:
            self.add(_ptr(pointer, "segment"), f"There is no segment with the key “{key}”.")
            return
        if self.segment_key is not None:
            path = self.path_back(lowered)
            if path:
                chain = " → ".join(f"“{k}”" for k in path)
                self.add(_ptr(pointer, "segment"), f"“{key}” refers back to this segment ({chain}); remove the loop.")

    def path_back(self, start: str) -> list[str] | None:
        """A reference chain from `start` back to the segment being saved, if any."""
        stack, seen = [(start, [start])], {start}
        while stack:
            current, path = stack.pop()
            for nxt in sorted(self.segment_graph.get(current, ())):
                if nxt == self.segment_key:
                    return [*path, nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    # -- attributes ---------------------------------------------------------------------------
    def attribute(self, node: dict, pointer: str, depth: int) -> None:
        name = node["attribute"]
        if not isinstance(name, str) or not name:
            self.add(_ptr(pointer, "attribute"), "Choose an attribute.")
            return
        registry = self.registry if name.startswith(CUSTOM_PREFIX) else {}
        field = field_for(name, registry)
        if field is None:
            if name.startswith(CUSTOM_PREFIX):
                message = f"The custom attribute “{name}” is not registered; check the spelling or register it first."
            else:
                message = f"Unknown attribute “{name}”."
            self.add(_ptr(pointer, "attribute"), message)
            return
        operator = node.get("operator")
        if not isinstance(operator, str) or operator not in field.operators:
            allowed = ", ".join(OPERATOR_LABELS[o] for o in field.operators)
            shown = _label(operator) if isinstance(operator, str) else "This operator"
            self.add(
                _ptr(pointer, "operator"),
                f"{shown} can't be used with “{name}” ({TYPE_NAMES[field.type]}); use one of: {allowed}.",
            )
            return
        value_type = "string" if field.type == "list" else field.type
        self.value(node, pointer, operator, value_type, domain=name if name in ("country", "gender") else None)

    def value(self, node: dict, pointer: str, operator: str, type_: str, *, domain: str | None = None) -> None:
        vp = _ptr(pointer, "value")
        if operator in NO_VALUE_OPERATORS:
            if "value" in node:
                self.add(vp, f"{_label(operator)} takes no value; remove it.")
            return
        if "value" not in node:
            self.add(vp, f"Enter a value for {_label(operator)}.")
            return
        value = node["value"]
        if operator in LIST_VALUE_OPERATORS:
            if not isinstance(value, list) or not value:
                self.add(vp, f"{_label(operator)} needs a non-empty list of values.")
                return
            if len(value) > MAX_LIST:
                self.add(vp, f"A list can have at most {MAX_LIST} values (this one has {len(value)}).")
                return
            for i, item in enumerate(value):
                self.scalar(_ptr(vp, i), item, type_, domain=domain)
            return
        if operator == "between":
            self.between(vp, value, type_)
            return
        if operator in DAYS_OPERATORS:
            if not _is_int(value) or not 0 <= value <= MAX_DAYS:
                self.add(vp, f"Enter a whole number of days from 0 to {MAX_DAYS}.")
            return
        if operator in INSTANT_OPERATORS:
            self.moment(vp, value, type_)
            return
        if operator in TEXT_OPERATORS:
            self.scalar(vp, value, "string")
            return
        if operator in COMPARE_OPERATORS:
            self.scalar(vp, value, "number")
            return
        self.scalar(vp, value, type_, domain=domain)

    def scalar(self, pointer: str, value, type_: str, *, domain: str | None = None) -> None:
        if type_ == "string":
            self.text(pointer, value, domain=domain)
        elif type_ == "number":
            if not _is_number(value):
                self.add(pointer, "Enter a number (without quotes).")
        elif type_ == "boolean":
            if not isinstance(value, bool):
                self.add(pointer, "Enter true or false.")
        elif type_ == "date":
            self.moment(pointer, value, "date")
        elif type_ == "datetime":
            self.moment(pointer, value, "datetime")
        elif type_ == "property":
            if isinstance(value, str):
                self.text(pointer, value)
            elif not (_is_number(value) or isinstance(value, bool)):
                self.add(pointer, "Enter text, a number or true/false.")

    def text(self, pointer: str, value, *, domain: str | None = None) -> None:
        if not isinstance(value, str):
            self.add(pointer, "Enter text (in quotes).")
            return
        try:
            check_clean(value)
        except NormalizationError as exc:
            self.add(pointer, str(exc))
            return
        clean = normalize_text(value)
        if clean is None:
            self.add(pointer, "Enter some text; an empty value can't be matched (use “is unknown” instead).")
        elif len(clean) > MAX_TEXT:
            self.add(pointer, f"Text values are limited to {MAX_TEXT} characters.")
        elif domain == "country" and not is_country_code(clean):
            self.add(pointer, f"“{clean}” is not a country code; use an ISO code such as PL or GB.")
        elif domain == "gender" and clean.lower() not in GENDERS:
            self.add(pointer, "Gender is one of female, male or other (use “is unknown” for the rest).")

    def moment(self, pointer: str, value, type_: str) -> bool:
        if isinstance(value, str) and value[:4].isdigit() and not "0001" <= value[:4] <= "9998":
            self.add(pointer, "Use a date between the years 0001 and 9998.")
            return False
        if type_ == "date":
            if not (isinstance(value, str) and DATE_RE.fullmatch(value) and _valid_date(value)):
                self.add(pointer, "Enter a date as YYYY-MM-DD.")
                return False
            return True
        if type_ == "datetime":
            if not (isinstance(value, str) and (DATE_RE.fullmatch(value) or DATETIME_RE.fullmatch(value))):
                self.add(pointer, "Enter a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM:SSZ), in UTC.")
                return False
            if not (_valid_date(value[:10]) and _valid_instant(value)):
                self.add(pointer, f"“{value}” is not a valid date or time.")
                return False
            return True
        self.add(pointer, "Dates can't be compared with this attribute.")
        return False

    def between(self, pointer: str, value, type_: str) -> None:
        if not isinstance(value, list) or len(value) != 2:
            self.add(pointer, "“between” needs a list of two values: [low, high].")
            return
        if type_ in ("date", "datetime"):
            if not all([self.moment(_ptr(pointer, i), v, type_) for i, v in enumerate(value)]):
                return
            if type_ == "date":
                ok = V.to_date(value[0]) <= V.to_date(value[1])
            else:
                low, _, high, high_inc = V.datetime_bounds("between", value, now=dt.datetime.now(dt.UTC))
                ok = low < high or (low == high and high_inc)
        elif type_ == "number":
            bad = [i for i, v in enumerate(value) if not _is_number(v)]
            for i in bad:
                self.add(_ptr(pointer, i), "Enter a number (without quotes).")
            if bad:
                return
            ok = value[0] <= value[1]
        else:
            self.add(pointer, "“between” applies to numbers and dates only.")
            return
        if not ok:
            self.add(pointer, "The first value of “between” must not be greater than the second.")

    # -- events -------------------------------------------------------------------------------
    def event(self, node: dict, pointer: str, depth: int) -> None:
        self.event_name(_ptr(pointer, "event"), node["event"])
        self.where(node, pointer)
        if "within" in node:
            self.window(_ptr(pointer, "within"), node["within"])
        if "count" in node:
            self.count(_ptr(pointer, "count"), node["count"])
        if "aggregate" in node:
            self.aggregate(_ptr(pointer, "aggregate"), node["aggregate"])
        sequences = [k for k in ("followed_by", "not_followed_by") if k in node]
        for key in sequences:
            follower = node[key]
            fp = _ptr(pointer, key)
            if not isinstance(follower, dict):
                self.add(fp, "Describe the later event as an object with “event” (and optional “where”).")
                continue
            self.unknown_keys(follower, fp, FOLLOWER_KEYS)
            self.event_name(_ptr(fp, "event"), follower.get("event"))
            self.where(follower, fp)
        if len(sequences) > 1:
            self.add(pointer, "Use either “followed_by” or “not_followed_by”, not both.")
        if "aggregate" in node and "count" in node:
            self.add(pointer, "An event condition can't have both “count” and “aggregate”; keep one.")
        if "aggregate" in node and sequences:
            self.add(pointer, f"An event condition can't have both “aggregate” and “{sequences[0]}”; keep one.")

    def event_name(self, pointer: str, name) -> None:
        if not isinstance(name, str) or not name.strip():
            self.add(pointer, "Name the event (for example “Order Completed”).")
            return
        try:
            check_clean(name)
        except NormalizationError as exc:
            self.add(pointer, str(exc))
            return
        if len(name) > 200:
            self.add(pointer, "Event names are at most 200 characters.")

    def where(self, node: dict, pointer: str) -> None:
        if "where" not in node:
            return
        filters = node["where"]
        wp = _ptr(pointer, "where")
        if not isinstance(filters, list):
            self.add(wp, "“where” must be a list of property filters.")
            return
        for i, item in enumerate(filters):
            self.nodes += 1
            self.property_filter(_ptr(wp, i), item)

    def property_filter(self, pointer: str, item) -> None:
        if not isinstance(item, dict):
            self.add(pointer, "Each property filter must be an object with “property” and “operator”.")
            return
        self.unknown_keys(item, pointer, FILTER_KEYS)
        self.path(_ptr(pointer, "property"), item.get("property"))
        operator = item.get("operator")
        if operator not in PROPERTY_OPERATORS:
            allowed = ", ".join(OPERATOR_LABELS[o] for o in PROPERTY_OPERATORS)
            self.add(_ptr(pointer, "operator"), f"Choose an operator for event properties: {allowed}.")
            return
        if operator in ("is", "is_not", "is_any_of", "is_none_of"):
            self.value(item, pointer, operator, "property")
        elif operator == "between":
            self.value(item, pointer, operator, "number")
        else:
            self.value(item, pointer, operator, "string")
        value = item.get("value")
        if operator in ("is_any_of", "is_none_of") and isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, bool):
                    self.add(_ptr(pointer, "value", i), "Lists hold text or numbers; use “is” for true/false.")

    def path(self, pointer: str, path) -> bool:
        message = (
            "Enter a property path such as properties.revenue or context.device.type "
            "(letters, digits, _ and - separated by dots)."
        )
        if not isinstance(path, str) or len(path) > 200:
            self.add(pointer, message)
            return False
        root, *keys = path.split(".")
        if root not in ("properties", "context") or not keys or not all(PATH_PART.fullmatch(k) for k in keys):
            self.add(pointer, message)
            return False
        if len(keys) > 10:
            self.add(pointer, "A property path can have at most 10 parts.")
            return False
        return True

    def window(self, pointer: str, window) -> None:
        if not isinstance(window, dict) or len(window) != 1 or next(iter(window)) not in WINDOW_KINDS:
            kinds = ", ".join(WINDOW_KINDS)
            self.add(pointer, f"A time window has exactly one of: {kinds}.")
            return
        kind, value = next(iter(window.items()))
        vp = _ptr(pointer, kind)
        if kind in ("last_days", "last_hours"):
            if not _is_int(value) or not 0 <= value <= MAX_DAYS:
                self.add(vp, f"Enter a whole number from 0 to {MAX_DAYS}.")
        elif kind == "between":
            self.between(vp, value, "datetime")
        else:
            self.moment(vp, value, "datetime")

    def count(self, pointer: str, spec) -> None:
        if not isinstance(spec, dict):
            self.add(pointer, "“count” needs an operator and a whole number, e.g. at least 3.")
            return
        self.unknown_keys(spec, pointer, {"operator", "value"})
        operator = spec.get("operator")
        if operator not in NUM_OPS:
            self.add(_ptr(pointer, "operator"), "Choose a comparison for the count: " + ", ".join(NUM_OPS) + ".")
            return
        value = spec.get("value")
        items = value if operator == "between" else [value]
        if operator == "between" and (not isinstance(value, list) or len(value) != 2):
            self.add(_ptr(pointer, "value"), "“between” needs a list of two values: [low, high].")
            return
        bad = False
        for i, item in enumerate(items):
            if not _is_int(item) or item < 0:
                vp = _ptr(pointer, "value", i) if operator == "between" else _ptr(pointer, "value")
                self.add(vp, "Enter a whole number of events (0 or more).")
                bad = True
        if operator == "between" and not bad and value[0] > value[1]:
            self.add(_ptr(pointer, "value"), "The first value of “between” must not be greater than the second.")

    def aggregate(self, pointer: str, spec) -> None:
        if not isinstance(spec, dict):
            self.add(pointer, "“aggregate” needs a function, a property, an operator and a number.")
            return
        self.unknown_keys(spec, pointer, {"function", "property", "operator", "value"})
        if spec.get("function") not in ("sum", "avg", "min", "max"):
            self.add(_ptr(pointer, "function"), "Choose sum, avg, min or max.")
        self.path(_ptr(pointer, "property"), spec.get("property"))
        operator = spec.get("operator")
        if operator not in NUM_OPS:
            self.add(_ptr(pointer, "operator"), "Choose a comparison: " + ", ".join(NUM_OPS) + ".")
            return
        self.value(spec, pointer, operator, "number")


def _valid_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _valid_instant(text: str) -> bool:
    try:
        V.instant(text)
        return True
    except (NormalizationError, ValueError, OverflowError):
        return False
