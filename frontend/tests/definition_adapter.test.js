// Round trips and typing of the builder <-> definition adapter. Run: node --test frontend/tests/
// (tests/segmentation/test_admin_builder_adapter.py runs it under pytest when node is installed).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const A = require("../../static/admin/segmentation/definition_adapter.js");

const TYPES = { country: "string", total_spent: "number", tags: "list", birth_date: "date",
                "custom.vip": "boolean", age: "number", last_order_at: "datetime" };

const EXAMPLES = [
  { match: "all", conditions: [] },
  { match: "all", conditions: [
    { attribute: "email", operator: "ends_with", value: ".uk" },
    { attribute: "source", operator: "is", value: "MailChimp" }] },
  { match: "all", conditions: [
    { attribute: "country", operator: "is", value: "PL" },
    { event: "Order Completed", aggregate:
      { function: "sum", property: "properties.revenue", operator: "more_than", value: 100 } }] },
  { match: "all", conditions: [
    { event: "Product Added", within: { last_days: 7 }, not_followed_by: { event: "Order Completed" } }] },
  { match: "any", conditions: [
    { match: "all", conditions: [
      { event: "Page Viewed", within: { last_days: 30 },
        where: [{ property: "context.device.type", operator: "is", value: "mobile" }],
        count: { operator: "at_least", value: 5 } },
      { attribute: "country", operator: "is_not", value: "GB" }] },
    { attribute: "tags", operator: "contains", value: "vip" }] },
  { match: "all", negate: true, conditions: [
    { segment: "high-value-customers", operator: "not_in" },
    { attribute: "total_spent", operator: "between", value: [10, 20.5] },
    { attribute: "tags", operator: "is_any_of", value: ["vip", "b2b"] },
    { attribute: "custom.vip", operator: "is", value: true },
    { attribute: "birth_date", operator: "less_than_days_ago", value: 30 },
    { attribute: "last_order_at", operator: "between", value: ["2026-01-01", "2026-02-01"] },
    { attribute: "age", operator: "is_unknown" },
    { event: "Email Opened", within: { between: ["2026-01-01", "2026-01-31"] }, count: { operator: "is", value: 0 } },
    { event: "Order Completed", within: { after: "2026-01-01" }, count: { operator: "between", value: [2, 4] },
      followed_by: { event: "Email Clicked", where: [{ property: "properties.amount", operator: "more_than", value: 3 }] } },
    { event: "Order Completed", aggregate: { function: "avg", property: "properties.revenue", operator: "at_least", value: 9.99 } },
    { event: "Page Viewed", within: { last_hours: 12 }, where: [
      { property: "properties.path", operator: "starts_with", value: "/shop" },
      { property: "properties.price", operator: "is_any_of", value: [1, "02134", "x"] },
      { property: "properties.coupon", operator: "has_any_value" }] }] },
];

test("every example survives definition -> state -> definition unchanged", () => {
  for (const def of EXAMPLES) {
    const copy = JSON.parse(JSON.stringify(def));
    const state = A.fromDefinition(def);
    assert.deepEqual(A.toDefinition(state, TYPES), def);
    assert.deepEqual(def, copy, "input not mutated");
  }
});

test("state carries ids, the definition never does", () => {
  const state = A.fromDefinition(EXAMPLES[4]);
  assert.ok(state.id && state.conditions[0].id);
  assert.ok(!JSON.stringify(A.toDefinition(state, TYPES)).includes('"id"'));
});

test("values are typed from the attribute type and operator", () => {
  assert.equal(A.typedValue("more_than", "100", "number"), 100);
  assert.equal(A.typedValue("is", " PL ", "string"), "PL");
  assert.deepEqual(A.typedValue("is_any_of", ["1", "2.5"], "number"), [1, 2.5]);
  assert.deepEqual(A.typedValue("is_any_of", "a, b", "string"), ["a", "b"]);
  assert.equal(A.typedValue("less_than_days_ago", "7", "datetime"), 7);
  assert.equal(A.typedValue("is", "true", "boolean"), true);
  assert.deepEqual(A.typedValue("between", ["2026-01-01", ""], "date"), ["2026-01-01", ""]);
  // A non-number stays text so the validator can name it instead of silently becoming NaN.
  assert.equal(A.typedValue("more_than", "abc", "number"), "abc");
  assert.equal(A.propertyValue("is", "02134"), "02134");
  assert.equal(A.propertyValue("is", "120.50"), 120.5);
});

test("a fresh builder condition produces something the validator can point at", () => {
  const root = A.newGroup("all");
  root.conditions.push(A.newAttribute());
  assert.deepEqual(A.toDefinition(root, TYPES), { match: "all", conditions: [{ attribute: "", operator: "", value: "" }] });
  const ev = A.newEvent();
  ev.event = "Order Completed";
  root.conditions = [ev];
  assert.deepEqual(A.toDefinition(root, TYPES), { match: "all", conditions: [{ event: "Order Completed" }] });
  ev.measure = "not_performed";
  assert.deepEqual(A.toDefinition(root, TYPES).conditions[0].count, { operator: "is", value: 0 });
});

test("pointers map to the node and field they concern", () => {
  const state = A.fromDefinition(EXAMPLES[4]);
  const inner = state.conditions[0];
  assert.deepEqual(A.locate(state, "/conditions/0/conditions/0/where/0/value"),
                   { id: inner.conditions[0].id, field: "where/0/value" });
  assert.deepEqual(A.locate(state, "/conditions/1/operator"), { id: state.conditions[1].id, field: "operator" });
  assert.deepEqual(A.locate(state, ""), { id: state.id, field: "" });
  assert.deepEqual(A.locate(state, "/conditions/0"), { id: inner.id, field: "" });
  assert.deepEqual(A.locate(state, "/conditions/9/operator"), { id: state.id, field: "conditions/9/operator" });
});

test("moving nodes between groups, never into themselves", () => {
  const state = A.fromDefinition(EXAMPLES[4]);
  const inner = state.conditions[0];
  const tag = state.conditions[1];
  assert.ok(A.moveNode(state, tag.id, inner.id, 0));
  assert.equal(state.conditions.length, 1);
  assert.equal(inner.conditions[0].id, tag.id);
  assert.equal(A.moveNode(state, inner.id, inner.id, 0), false);
  assert.equal(A.moveNode(state, state.id, inner.id, 0), false);
});
