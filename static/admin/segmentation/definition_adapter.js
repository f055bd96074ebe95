/*
 * The one adapter between the builder's state and the segment definition language
 * (shared/spec/segment-definitions.md). Pure functions, no DOM: loaded by the admin page as
 * window.TesseraDefinitionAdapter and by `node --test` (frontend/tests/) as a module.
 *
 * Builder state adds what the UI needs and the language must not contain (decisions 8:
 * unknown keys are refused, so ids never leak into the definition):
 *   group:     {type: "group", id, match, negate, conditions: [node...]}
 *   attribute: {type: "attribute", id, attribute, operator, value}
 *   event:     {type: "event", id, event, where: [filter...], window: {mode, n, from, to},
 *               measure: "performed" | "not_performed" | "count" | "aggregate",
 *               count: {operator, value}, aggregate: {function, property, operator, value},
 *               sequence: {mode: "" | "followed_by" | "not_followed_by", event, where: [filter...]}}
 *   segment:   {type: "segment", id, segment, operator}
 *   filter:    {id, property, operator, value}
 * Values are kept as the inputs hold them (strings, arrays of strings, booleans) and typed on
 * the way out from the attribute's registered type, so the validator sees JSON of the right
 * type (numbers for number attributes: the validator refuses "10" for a number, decisions 8).
 */
(function (root, factory) {
  if (typeof module === "object" && module.exports) module.exports = factory();
  else root.TesseraDefinitionAdapter = factory();
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  var NO_VALUE = ["has_any_value", "is_unknown"];
  var LIST_OPS = ["is_any_of", "is_none_of"];
  var DAYS_OPS = ["less_than_days_ago", "more_than_days_ago"];
  var NUMERIC_OPS = ["less_than", "more_than", "at_most", "at_least"];
  var NUMERIC_RE = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
  var WINDOW_MODES = ["last_days", "last_hours", "after", "before", "between"];
  var counter = 0;

  function newId() {
    counter += 1;
    return "n" + counter;
  }

  function newGroup(match) {
    return { type: "group", id: newId(), match: match || "all", negate: false, conditions: [] };
  }
  function newAttribute() {
    return { type: "attribute", id: newId(), attribute: "", operator: "", value: "" };
  }
  function newFilter() {
    return { id: newId(), property: "", operator: "is", value: "" };
  }
  function newEvent() {
    return {
      type: "event", id: newId(), event: "", where: [],
      window: { mode: "", n: "", from: "", to: "" },
      measure: "performed",
      count: { operator: "at_least", value: "1" },
      aggregate: { function: "sum", property: "properties.revenue", operator: "more_than", value: "" },
      sequence: { mode: "", event: "", where: [] },
    };
  }
  function newSegment() {
    return { type: "segment", id: newId(), segment: "", operator: "in" };
  }

  // ------------------------------------------------------------------ definition -> state
  function scalarToInput(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "boolean") return value;
    return String(value);
  }
  function valueToInput(value) {
    if (Array.isArray(value)) return value.map(scalarToInput);
    return scalarToInput(value);
  }
  function filtersFrom(list) {
    return (Array.isArray(list) ? list : []).map(function (f) {
      return { id: newId(), property: f.property || "", operator: f.operator || "is",
               value: "value" in f ? valueToInput(f.value) : "" };
    });
  }
  function numOpFrom(spec) {
    return { operator: spec.operator || "at_least", value: valueToInput(spec.value) };
  }

  function fromDefinition(def) {
    if (!def || typeof def !== "object" || Array.isArray(def)) return newGroup("all");
    return nodeFrom(def, true);
  }

  function nodeFrom(node) {
    if (Array.isArray(node.conditions) || node.match) {
      var group = newGroup(node.match === "any" ? "any" : "all");
      group.negate = node.negate === true;
      group.conditions = (node.conditions || []).map(nodeFrom);
      return group;
    }
    if ("attribute" in node) {
      var a = newAttribute();
      a.attribute = node.attribute || "";
      a.operator = node.operator || "";
      a.value = "value" in node ? valueToInput(node.value) : "";
      return a;
    }
    if ("segment" in node) {
      var s = newSegment();
      s.segment = node.segment || "";
      s.operator = node.operator === "not_in" ? "not_in" : "in";
      return s;
    }
    var e = newEvent();
    e.event = node.event || "";
    e.where = filtersFrom(node.where);
    var w = node.within || {};
    WINDOW_MODES.forEach(function (mode) {
      if (mode in w) {
        e.window.mode = mode;
        if (mode === "between") {
          e.window.from = (w.between || [])[0] || "";
          e.window.to = (w.between || [])[1] || "";
        } else if (mode === "after" || mode === "before") e.window.from = w[mode] || "";
        else e.window.n = scalarToInput(w[mode]);
      }
    });
    if (node.count) {
      if (node.count.operator === "is" && node.count.value === 0 && !node.followed_by && !node.not_followed_by) {
        e.measure = "not_performed";
      } else {
        e.measure = "count";
        e.count = numOpFrom(node.count);
      }
    } else if (node.aggregate) {
      e.measure = "aggregate";
      e.aggregate = {
        function: node.aggregate.function || "sum",
        property: node.aggregate.property || "",
        operator: node.aggregate.operator || "more_than",
        value: valueToInput(node.aggregate.value),
      };
    }
    ["followed_by", "not_followed_by"].forEach(function (mode) {
      if (node[mode]) {
        e.sequence = { mode: mode, event: node[mode].event || "", where: filtersFrom(node[mode].where) };
      }
    });
    return e;
  }

  // ------------------------------------------------------------------ state -> definition
  function toNumber(v) {
    if (typeof v === "number") return v;
    var text = String(v === undefined || v === null ? "" : v).trim();
    if (text === "") return "";
    var n = Number(text);
    return isNaN(n) ? text : n; // left as text so the validator names the bad value
  }
  function toInt(v) {
    var n = toNumber(v);
    return typeof n === "number" && Math.floor(n) === n ? n : n;
  }
  function toBool(v) {
    if (v === true || v === "true") return true;
    if (v === false || v === "false") return false;
    return v;
  }
  function trimmed(v) {
    return typeof v === "string" ? v.trim() : v;
  }
  function asList(v) {
    if (Array.isArray(v)) return v;
    if (v === "" || v === undefined || v === null) return [];
    return String(v).split(",").map(function (x) { return x.trim(); }).filter(Boolean);
  }

  // `type` is the attribute's registered type (string, number, boolean, date, datetime, list).
  function typedValue(operator, value, type) {
    if (DAYS_OPS.indexOf(operator) >= 0) return toInt(value);
    if (LIST_OPS.indexOf(operator) >= 0) {
      return asList(value).map(function (x) { return type === "number" ? toNumber(x) : trimmed(x); });
    }
    if (operator === "between") {
      var pair = asList(value);
      while (pair.length < 2) pair.push("");
      pair = pair.slice(0, 2);
      return type === "number" ? pair.map(toNumber) : pair.map(trimmed);
    }
    if (type === "number" || NUMERIC_OPS.indexOf(operator) >= 0) return toNumber(value);
    if (type === "boolean") return toBool(value);
    return trimmed(value);
  }

  // Event properties have no registry (decisions 5): numeric operators take numbers, and a
  // numeric-looking value of is / is not / is any of compares numerically.
  function propertyValue(operator, value) {
    function guess(x) {
      if (typeof x === "boolean") return x;
      var t = String(x).trim();
      return NUMERIC_RE.test(t) ? Number(t) : t;
    }
    if (LIST_OPS.indexOf(operator) >= 0) return asList(value).map(guess);
    if (operator === "between") return asList(value).slice(0, 2).map(toNumber);
    if (NUMERIC_OPS.indexOf(operator) >= 0) return toNumber(value);
    if (DAYS_OPS.indexOf(operator) >= 0) return toInt(value);
    if (["before", "after", "on", "starts_with", "ends_with", "contains", "does_not_contain"].indexOf(operator) >= 0) {
      return trimmed(value);
    }
    return guess(value);
  }

  function filtersTo(list) {
    return list.map(function (f) {
      var out = { property: trimmed(f.property), operator: f.operator };
      if (NO_VALUE.indexOf(f.operator) < 0) out.value = propertyValue(f.operator, f.value);
      return out;
    });
  }
  function numOpTo(spec, integer) {
    var convert = integer ? toInt : toNumber;
    var value = spec.operator === "between" ? asList(spec.value).slice(0, 2).map(convert) : convert(spec.value);
    return { operator: spec.operator, value: value };
  }

  function toDefinition(state, types) {
    return nodeTo(state, types || {});
  }

  function nodeTo(node, types) {
    if (node.type === "group") {
      var g = { match: node.match, conditions: node.conditions.map(function (c) { return nodeTo(c, types); }) };
      if (node.negate) g.negate = true;
      return g;
    }
    if (node.type === "attribute") {
      var a = { attribute: node.attribute, operator: node.operator };
      if (NO_VALUE.indexOf(node.operator) < 0) a.value = typedValue(node.operator, node.value, types[node.attribute]);
      return a;
    }
    if (node.type === "segment") return { segment: node.segment, operator: node.operator };
    var e = { event: trimmed(node.event) };
    if (node.where.length) e.where = filtersTo(node.where);
    var w = node.window;
    if (w.mode === "last_days" || w.mode === "last_hours") e.within = obj(w.mode, toInt(w.n));
    else if (w.mode === "after" || w.mode === "before") e.within = obj(w.mode, trimmed(w.from));
    else if (w.mode === "between") e.within = { between: [trimmed(w.from), trimmed(w.to)] };
    if (node.measure === "not_performed") e.count = { operator: "is", value: 0 };
    else if (node.measure === "count") e.count = numOpTo(node.count, true);
    else if (node.measure === "aggregate") {
      var agg = numOpTo(node.aggregate, false);
      e.aggregate = { function: node.aggregate.function, property: trimmed(node.aggregate.property),
                      operator: agg.operator, value: agg.value };
    }
    if (node.sequence.mode && node.measure !== "aggregate") {
      var seq = { event: trimmed(node.sequence.event) };
      if (node.sequence.where.length) seq.where = filtersTo(node.sequence.where);
      e[node.sequence.mode] = seq;
    }
    return e;
  }

  function obj(key, value) {
    var o = {};
    o[key] = value;
    return o;
  }

  // ------------------------------------------------------------------ errors -> nodes
  /*
   * Map a validator JSON pointer ("/conditions/1/where/0/value") to the builder node it
   * concerns and the rest of the path ("where/0/value"), so the message is shown beside the
   * right condition. Pointers that stop at a group (or "" for the root) attach to the group.
   */
  function locate(state, pointer) {
    var parts = String(pointer || "").split("/").slice(1).map(function (p) {
      return p.replace(/~1/g, "/").replace(/~0/g, "~");
    });
    var node = state;
    var i = 0;
    while (i < parts.length && node.type === "group" && parts[i] === "conditions" && i + 1 < parts.length) {
      var child = node.conditions[Number(parts[i + 1])];
      if (!child) break;
      node = child;
      i += 2;
    }
    return { id: node.id, field: parts.slice(i).join("/") };
  }

  function findNode(state, id) {
    if (state.id === id) return { node: state, parent: null, index: -1 };
    if (state.type !== "group") return null;
    for (var i = 0; i < state.conditions.length; i++) {
      var child = state.conditions[i];
      if (child.id === id) return { node: child, parent: state, index: i };
      var found = findNode(child, id);
      if (found) return found;
    }
    return null;
  }

  function contains(ancestor, id) {
    return !!findNode(ancestor, id);
  }

  /* Move node `id` into group `targetId` at `index`; refuses to move a group into itself. */
  function moveNode(state, id, targetId, index) {
    var from = findNode(state, id);
    var target = findNode(state, targetId);
    if (!from || !from.parent || !target || target.node.type !== "group") return false;
    if (contains(from.node, targetId)) return false;
    from.parent.conditions.splice(from.index, 1);
    var list = target.node.conditions;
    list.splice(Math.max(0, Math.min(index, list.length)), 0, from.node);
    return true;
  }

  return {
    NO_VALUE: NO_VALUE, LIST_OPS: LIST_OPS, DAYS_OPS: DAYS_OPS, NUMERIC_OPS: NUMERIC_OPS,
    newGroup: newGroup, newAttribute: newAttribute, newEvent: newEvent, newSegment: newSegment,
    newFilter: newFilter, fromDefinition: fromDefinition, toDefinition: toDefinition,
    typedValue: typedValue, propertyValue: propertyValue, locate: locate, findNode: findNode,
    moveNode: moveNode,
  };
});
