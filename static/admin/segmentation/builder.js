/*
 * Condition builder for the segment add/change page.
 *
 * Edits the whole definition language (groups all/any + negate, attribute, event and segment
 * conditions) without typing JSON. The state <-> definition mapping lives in
 * definition_adapter.js (tested with node --test); this file is only the DOM: it renders the
 * state, writes the definition into the hidden `definition` field, keeps the JSON view in sync
 * and asks the preview API (debounced) for count, sample, enter/leave and the summary.
 * Validation errors come back as JSON pointers and are shown beside the condition they concern.
 * Pickers are Tom Select; drag and drop reordering is SortableJS (both vendored in static/vendor).
 */
(function () {
  "use strict";
  var A = window.TesseraDefinitionAdapter;
  var configEl = document.getElementById("seg-builder-config");
  if (!configEl || !A) return;
  var config = JSON.parse(configEl.textContent);
  var mount = document.getElementById("seg-builder");
  var hidden = document.querySelector("input[name=definition]");
  var jsonText = document.getElementById("seg-json-text");
  var readonly = !!config.readonly;
  var meta = null;
  var attrs = {};
  var types = {};
  var state = A.fromDefinition(config.definition);
  var errorsById = {};
  var previewTimer = null;
  var previewSeq = 0;
  var propertyCache = {};

  var PROPERTY_OPS = ["is", "is_not", "is_any_of", "is_none_of", "contains", "does_not_contain", "starts_with",
    "ends_with", "less_than", "more_than", "at_most", "at_least", "between", "has_any_value", "is_unknown"];
  var WINDOW_LABELS = [["", "at any time"], ["last_days", "in the last … days"], ["last_hours", "in the last … hours"],
    ["after", "after a date"], ["before", "before a date"], ["between", "between two dates"]];
  var MEASURES = [["performed", "performed at least once"], ["not_performed", "did not perform"],
    ["count", "performed a number of times"], ["aggregate", "with a sum, average, min or max of"]];
  var AGG_FUNCS = [["sum", "sum"], ["avg", "average"], ["min", "minimum"], ["max", "maximum"]];

  // ------------------------------------------------------------------ tiny DOM helpers
  function h(tag, props) {
    var el = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      var v = props[k];
      if (v === undefined || v === null || v === false) return;
      if (k === "text") el.textContent = v;
      else if (k === "class") el.className = v;
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else el.setAttribute(k, v === true ? "" : v);
    });
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      (Array.isArray(c) ? c : [c]).forEach(function (x) {
        if (x !== null && x !== undefined && x !== false) el.appendChild(typeof x === "string" ? document.createTextNode(x) : x);
      });
    }
    return el;
  }
  function select(options, value, onchange, props) {
    var el = h("select", Object.assign({ disabled: readonly }, props || {}));
    options.forEach(function (o) {
      var opt = h("option", { value: o[0], text: o[1] });
      if (String(o[0]) === String(value)) opt.selected = true;
      el.appendChild(opt);
    });
    el.addEventListener("change", function () { onchange(el.value); });
    return el;
  }
  function input(type, value, oninput, props) {
    var el = h("input", Object.assign({ type: type, disabled: readonly }, props || {}));
    el.value = value === undefined || value === null ? "" : value;
    el.addEventListener("input", function () { oninput(el.value); });
    return el;
  }
  function opLabel(op) { return (meta && meta.operator_labels[op]) || op.replace(/_/g, " "); }
  function tool(label, title, onclick) {
    return h("button", { type: "button", class: "seg-tool", title: title, "aria-label": title, onclick: onclick }, label);
  }

  // Tom Select wrappers: created after the element is in the document.
  var pendingPickers = [];
  function picker(el, options) {
    if (readonly) return el;
    pendingPickers.push(function () {
      if (!window.TomSelect) return;
      var ts = new window.TomSelect(el, Object.assign({ maxOptions: 500, allowEmptyOption: false }, options));
      el._tom = ts;
    });
    return el;
  }

  // ------------------------------------------------------------------ state changes
  function changed(structural) {
    if (structural) render();
    sync();
    schedulePreview();
  }
  function sync() {
    var def = A.toDefinition(state, types);
    var text = JSON.stringify(def);
    if (hidden) hidden.value = text;
    if (jsonText && document.activeElement !== jsonText) jsonText.value = JSON.stringify(def, null, 2);
  }
  function removeNode(id) {
    var found = A.findNode(state, id);
    if (found && found.parent) {
      found.parent.conditions.splice(found.index, 1);
      changed(true);
    }
  }
  function moveBy(id, delta) {
    var found = A.findNode(state, id);
    if (!found || !found.parent) return;
    var to = found.index + delta;
    if (to < 0 || to >= found.parent.conditions.length) return;
    A.moveNode(state, id, found.parent.id, to);
    changed(true);
  }

  // ------------------------------------------------------------------ rendering
  function render() {
    pendingPickers = [];
    var tree = renderGroup(state, true);
    mount.replaceChildren(tree);
    mount.classList.toggle("seg-readonly", readonly);
    pendingPickers.forEach(function (fn) { fn(); });
    pendingPickers = [];
    if (!readonly && window.Sortable) {
      mount.querySelectorAll(".seg-conditions").forEach(function (list) {
        window.Sortable.create(list, {
          group: "seg-conditions", handle: ".seg-drag", animation: 120, ghostClass: "seg-ghost",
          filter: ".seg-empty", fallbackOnBody: true, swapThreshold: 0.6,
          onEnd: function (evt) {
            var id = evt.item.getAttribute("data-node");
            var target = evt.to.getAttribute("data-group");
            var index = Array.prototype.filter.call(evt.to.children, function (li) {
              return li.hasAttribute("data-node");
            }).indexOf(evt.item);
            A.moveNode(state, id, target, index);
            changed(true);
          },
        });
      });
    }
    showErrors();
  }

  function nodeTools(node, isRoot) {
    if (readonly || isRoot) return null;
    return h("span", { class: "seg-node-tools" },
      tool("↑", "Move up", function () { moveBy(node.id, -1); }),
      tool("↓", "Move down", function () { moveBy(node.id, 1); }),
      tool("✕", "Remove", function () { removeNode(node.id); }));
  }
  function dragHandle(isRoot) {
    return readonly || isRoot ? null : h("span", { class: "seg-drag", title: "Drag to reorder", "aria-hidden": "true" }, "⠿");
  }

  function renderGroup(g, isRoot) {
    var list = h("ul", { class: "seg-conditions", "data-group": g.id });
    if (!g.conditions.length) {
      list.appendChild(h("li", { class: "seg-empty" }, isRoot ? "No conditions yet: everyone matches." : "Empty group: it imposes no condition."));
    }
    g.conditions.forEach(function (c) {
      list.appendChild(h("li", { "data-node": c.id }, renderNode(c)));
    });
    var head = h("div", { class: "seg-group-head" },
      dragHandle(isRoot),
      h("span", null, isRoot ? "Customers who match" : "Match"),
      select([["all", "all"], ["any", "any"]], g.match, function (v) { g.match = v; changed(true); },
        { class: "seg-match", "aria-label": "all or any" }),
      h("span", null, "of these conditions"),
      h("label", { class: "seg-negate-label" },
        (function () {
          var cb = h("input", { type: "checkbox", class: "seg-negate", disabled: readonly });
          cb.checked = !!g.negate;
          cb.addEventListener("change", function () { g.negate = cb.checked; changed(true); });
          return cb;
        })(),
        "exclude (NOT)"),
      h("span", { class: "seg-spacer" }),
      nodeTools(g, isRoot));
    var add = readonly ? null : h("div", { class: "seg-add-bar" },
      addButton("+ Attribute", "seg-add-attribute", function () { g.conditions.push(A.newAttribute()); }),
      addButton("+ Event", "seg-add-event", function () { g.conditions.push(A.newEvent()); }),
      addButton("+ Segment", "seg-add-segment", function () { g.conditions.push(A.newSegment()); }),
      addButton("+ Group", "seg-add-group", function () {
        var inner = A.newGroup(g.match === "all" ? "any" : "all");
        inner.conditions.push(A.newAttribute());
        g.conditions.push(inner);
      }));
    return h("div", { class: "seg-group" + (g.negate ? " seg-negated" : ""), "data-id": g.id },
      head, list, h("ul", { class: "seg-errors" }), add);
  }

  function addButton(label, cls, fn) {
    return h("button", { type: "button", class: "button " + cls, onclick: function () { fn(); changed(true); } }, label);
  }

  function renderNode(node) {
    if (node.type === "group") return renderGroup(node, false);
    var body = node.type === "attribute" ? renderAttribute(node)
      : node.type === "event" ? renderEvent(node) : renderSegment(node);
    return h("div", { class: "seg-cond seg-cond-" + node.type, "data-id": node.id }, body, h("ul", { class: "seg-errors" }));
  }

  // ---------------------------------------------------------------- attribute conditions
  function attributePicker(node) {
    var el = h("select", { class: "seg-attr-picker seg-grow", "aria-label": "Attribute", disabled: readonly });
    el.appendChild(h("option", { value: "", text: "Choose an attribute…" }));
    var groups = {};
    (meta.attributes || []).forEach(function (a) {
      if (!groups[a.group]) groups[a.group] = el.appendChild(h("optgroup", { label: a.group }));
      var opt = h("option", { value: a.key, text: a.label });
      if (a.key === node.attribute) opt.selected = true;
      groups[a.group].appendChild(opt);
    });
    if (node.attribute && !attrs[node.attribute]) {
      el.appendChild(h("option", { value: node.attribute, text: node.attribute, selected: true }));
    }
    el.addEventListener("change", function () {
      var before = attrs[node.attribute];
      node.attribute = el.value;
      var a = attrs[node.attribute];
      if (a && a.operators.indexOf(node.operator) < 0) node.operator = a.operators[0];
      if (!before || !a || before.type !== a.type) node.value = "";
      changed(true);
    });
    return picker(el, {
      searchField: ["text", "value"],
      render: {
        option: function (data, escape) {
          return "<div>" + escape(data.text) + '<span class="seg-opt-key">' + escape(data.value) + "</span></div>";
        },
      },
    });
  }

  function renderAttribute(node) {
    var a = attrs[node.attribute];
    var ops = a ? a.operators : [];
    var opSelect = select(ops.map(function (op) { return [op, opLabel(op)]; }).concat(ops.length ? [] : [["", "—"]]),
      node.operator, function (v) { changeOperator(node, v); }, { class: "seg-op", "aria-label": "Operator" });
    return h("div", { class: "seg-cond-row" },
      dragHandle(false),
      h("span", { class: "seg-cond-kind" }, "Attribute"),
      attributePicker(node),
      opSelect,
      valueWidget(node, a ? a.type : "string", node.attribute),
      nodeTools(node, false));
  }

  function changeOperator(holder, op) {
    var wasList = A.LIST_OPS.indexOf(holder.operator) >= 0 || holder.operator === "between";
    var isList = A.LIST_OPS.indexOf(op) >= 0 || op === "between";
    var wasDays = A.DAYS_OPS.indexOf(holder.operator) >= 0;
    var isDays = A.DAYS_OPS.indexOf(op) >= 0;
    holder.operator = op;
    if (wasList !== isList || wasDays !== isDays) holder.value = isList ? [] : "";
    changed(true);
  }

  function isDateType(type) { return type === "date" || type === "datetime"; }

  /* The value input for `holder` ({operator, value}) given the attribute type and key. */
  function valueWidget(holder, type, key) {
    var op = holder.operator;
    if (!op || A.NO_VALUE.indexOf(op) >= 0) return null;
    function set(v) { holder.value = v; changed(false); }
    if (A.DAYS_OPS.indexOf(op) >= 0) {
      return h("span", { class: "seg-value" },
        input("number", holder.value, set, { min: 0, max: 36500, step: 1, class: "seg-value-input", "aria-label": "Days" }),
        h("span", null, " days ago "), h("span", { class: "seg-utc" }, "(UTC)"));
    }
    if (op === "between") {
      var pair = Array.isArray(holder.value) ? holder.value.slice() : ["", ""];
      while (pair.length < 2) pair.push("");
      var kind = isDateType(type) ? "date" : type === "number" ? "number" : "text";
      function setAt(i) { return function (v) { pair[i] = v; holder.value = pair.slice(); changed(false); }; }
      return h("span", { class: "seg-value" },
        input(kind, pair[0], setAt(0), { class: "seg-value-input seg-value-low", step: "any", "aria-label": "From" }),
        h("span", null, " and "),
        input(kind, pair[1], setAt(1), { class: "seg-value-input seg-value-high", step: "any", "aria-label": "To" }),
        isDateType(type) ? h("span", { class: "seg-utc" }, " (UTC, inclusive)") : null);
    }
    if (A.LIST_OPS.indexOf(op) >= 0) return chips(holder, key, type);
    if (key === "tags") return tagChooser(holder);
    if (isDateType(type)) {
      return h("span", { class: "seg-value" },
        input("date", holder.value, set, { class: "seg-value-input", "aria-label": "Date" }),
        h("span", { class: "seg-utc" }, " (UTC)"));
    }
    if (type === "boolean") {
      var v = holder.value === "" ? "" : String(holder.value);
      return select([["", "choose…"], ["true", "true"], ["false", "false"]], v, function (x) {
        holder.value = x === "" ? "" : x === "true"; changed(false);
      }, { class: "seg-value-input", "aria-label": "Value" });
    }
    if (type === "number") return input("number", holder.value, set, { step: "any", class: "seg-value-input", "aria-label": "Value" });
    if ((key === "country" || key === "gender") && (op === "is" || op === "is_not")) {
      var options = key === "country"
        ? meta.countries.map(function (c) { return [c.code, c.name + " (" + c.code + ")"]; })
        : meta.genders.map(function (g) { return [g, g]; });
      var el = select([["", "Choose…"]].concat(options), holder.value, function (x) { holder.value = x; changed(false); },
        { class: "seg-value-input seg-value-choice seg-grow", "aria-label": "Value" });
      return picker(el, {});
    }
    return input("text", holder.value, set, { class: "seg-value-input seg-grow", "aria-label": "Value" });
  }

  function chips(holder, key, type) {
    var values = Array.isArray(holder.value) ? holder.value.map(String) : [];
    var el = h("select", { multiple: true, class: "seg-value-chips seg-wide", "aria-label": "Values", disabled: readonly });
    var options = [];
    if (key === "tags") options = meta.tags.map(function (t) { return [t, t]; });
    else if (key === "country") options = meta.countries.map(function (c) { return [c.code, c.name + " (" + c.code + ")"]; });
    else if (key === "gender") options = meta.genders.map(function (g) { return [g, g]; });
    var known = {};
    options.forEach(function (o) { known[o[0]] = true; el.appendChild(h("option", { value: o[0], text: o[1] })); });
    values.forEach(function (v) { if (!known[v]) el.appendChild(h("option", { value: v, text: v })); });
    Array.prototype.forEach.call(el.options, function (o) { o.selected = values.indexOf(o.value) >= 0; });
    el.addEventListener("change", function () {
      holder.value = Array.prototype.filter.call(el.options, function (o) { return o.selected; }).map(function (o) { return o.value; });
      changed(false);
    });
    var creatable = key !== "country" && key !== "gender";
    return picker(el, {
      create: creatable, persist: false, plugins: ["remove_button"], delimiter: ",",
      placeholder: type === "number" ? "Type a number, Enter" : "Type a value, Enter",
      createFilter: type === "number" ? function (v) { return !isNaN(Number(v)); } : null,
    });
  }

  function tagChooser(holder) {
    var el = h("select", { class: "seg-value-tag seg-grow", "aria-label": "Tag", disabled: readonly });
    el.appendChild(h("option", { value: "", text: "Choose a tag…" }));
    var list = meta.tags.slice();
    if (holder.value && list.indexOf(holder.value) < 0) list.push(holder.value);
    list.forEach(function (t) { el.appendChild(h("option", { value: t, text: t, selected: t === holder.value })); });
    el.addEventListener("change", function () { holder.value = el.value; changed(false); });
    return picker(el, { create: true, persist: false });
  }

  // ---------------------------------------------------------------- event conditions
  function eventPicker(value, onchange, cls) {
    var el = h("select", { class: (cls || "seg-event-picker") + " seg-grow", "aria-label": "Event name", disabled: readonly });
    el.appendChild(h("option", { value: "", text: "Choose an event…" }));
    var names = meta.events.slice();
    if (value && names.indexOf(value) < 0) names.push(value);
    names.forEach(function (n) { el.appendChild(h("option", { value: n, text: n, selected: n === value })); });
    el.addEventListener("change", function () { onchange(el.value); });
    return picker(el, { create: true, persist: false });
  }

  function propertyPicker(value, eventName, onchange, cls) {
    var el = h("select", { class: (cls || "seg-prop-picker") + " seg-grow", "aria-label": "Property", disabled: readonly });
    el.appendChild(h("option", { value: "", text: "property…" }));
    if (value) el.appendChild(h("option", { value: value, text: value, selected: true }));
    el.addEventListener("change", function () { onchange(el.value); });
    return picker(el, {
      create: function (input) {
        var path = /^(properties|context)\./.test(input) ? input : "properties." + input;
        return { value: path, text: path };
      },
      persist: false, preload: "focus",
      load: function (query, callback) {
        loadProperties(eventName).then(function (props) {
          callback(props.map(function (p) { return { value: p, text: p }; }));
        }, function () { callback(); });
      },
    });
  }

  function loadProperties(eventName) {
    if (!eventName) return Promise.resolve([]);
    if (!propertyCache[eventName]) {
      propertyCache[eventName] = fetch(config.propertiesUrl + "?event=" + encodeURIComponent(eventName), {
        credentials: "same-origin", headers: { Accept: "application/json" },
      }).then(function (r) { return r.json(); }).then(function (d) { return d.properties || []; });
    }
    return propertyCache[eventName];
  }

  function filterRows(list, eventName, label) {
    var box = h("div", { class: "seg-filters" });
    list.forEach(function (f, i) {
      box.appendChild(h("div", { class: "seg-cond-row seg-filter", "data-filter": i },
        h("span", { class: "seg-cond-kind" }, i === 0 ? label : "and"),
        propertyPicker(f.property, eventName, function (v) { f.property = v; changed(false); }),
        select(PROPERTY_OPS.map(function (op) { return [op, opLabel(op)]; }), f.operator,
          function (v) { changeOperator(f, v); }, { class: "seg-op", "aria-label": "Property operator" }),
        valueWidget(f, "property", null),
        h("span", { class: "seg-spacer" }),
        readonly ? null : tool("✕", "Remove filter", function () { list.splice(i, 1); changed(true); })));
    });
    if (!readonly) {
      box.appendChild(h("div", { class: "seg-cond-row" },
        h("button", { type: "button", class: "button seg-add-filter", onclick: function () { list.push(A.newFilter()); changed(true); } },
          "+ Property filter")));
    }
    return box;
  }

  function numOp(spec, integer, suffix) {
    var ops = (meta.num_operators || []).map(function (op) { return [op, opLabel(op)]; });
    return [
      select(ops, spec.operator, function (v) { changeOperator(spec, v); }, { class: "seg-op", "aria-label": "Comparison" }),
      spec.operator === "between" ? valueWidget(spec, "number", null)
        : input("number", spec.value, function (v) { spec.value = v; changed(false); },
          { step: integer ? 1 : "any", min: integer ? 0 : null, class: "seg-value-input", "aria-label": "Number" }),
      suffix ? h("span", null, suffix) : null,
    ];
  }

  function renderEvent(node) {
    var row1 = h("div", { class: "seg-cond-row" },
      dragHandle(false),
      h("span", { class: "seg-cond-kind" }, "Event"),
      eventPicker(node.event, function (v) { node.event = v; changed(true); }),
      select(MEASURES, node.measure, function (v) { node.measure = v; changed(true); }, { class: "seg-measure", "aria-label": "How" }),
      nodeTools(node, false));
    var rows = [row1];
    if (node.measure === "count") {
      rows.push(h("div", { class: "seg-cond-row seg-sub-row" }, h("span", { class: "seg-cond-kind" }, "times"),
        numOp(node.count, true, "times")));
    } else if (node.measure === "aggregate") {
      var agg = node.aggregate;
      rows.push(h("div", { class: "seg-cond-row seg-sub-row" }, h("span", { class: "seg-cond-kind" }, "value"),
        select(AGG_FUNCS, agg.function, function (v) { agg.function = v; changed(false); }, { class: "seg-agg-fn", "aria-label": "Aggregate" }),
        h("span", null, "of"),
        propertyPicker(agg.property, node.event, function (v) { agg.property = v; changed(false); }, "seg-agg-prop"),
        numOp(agg, false)));
    }
    var w = node.window;
    var windowInputs = [];
    if (w.mode === "last_days" || w.mode === "last_hours") {
      windowInputs.push(input("number", w.n, function (v) { w.n = v; changed(false); },
        { min: 0, max: 36500, step: 1, class: "seg-window-n", "aria-label": "Number" }),
        h("span", null, w.mode === "last_days" ? "days" : "hours"));
    } else if (w.mode === "after" || w.mode === "before") {
      windowInputs.push(input("date", w.from, function (v) { w.from = v; changed(false); }, { class: "seg-window-date", "aria-label": "Date" }),
        h("span", { class: "seg-utc" }, "(UTC)"));
    } else if (w.mode === "between") {
      windowInputs.push(input("date", w.from, function (v) { w.from = v; changed(false); }, { class: "seg-window-from", "aria-label": "From" }),
        h("span", null, "and"),
        input("date", w.to, function (v) { w.to = v; changed(false); }, { class: "seg-window-to", "aria-label": "To" }),
        h("span", { class: "seg-utc" }, "(UTC, inclusive)"));
    }
    rows.push(h("div", { class: "seg-cond-row seg-sub-row" }, h("span", { class: "seg-cond-kind" }, "when"),
      select(WINDOW_LABELS, w.mode, function (v) { w.mode = v; if (v === "last_days" && !w.n) w.n = "30"; changed(true); },
        { class: "seg-window", "aria-label": "Time window" }),
      windowInputs));
    rows.push(filterRows(node.where, node.event, "where"));
    if (node.measure !== "aggregate") {
      var seq = node.sequence;
      var seqRow = h("div", { class: "seg-cond-row seg-sub-row" }, h("span", { class: "seg-cond-kind" }, "then"),
        select([["", "no sequence"], ["followed_by", "followed later by"], ["not_followed_by", "not followed later by"]],
          seq.mode, function (v) { seq.mode = v; changed(true); }, { class: "seg-sequence", "aria-label": "Sequence" }),
        seq.mode ? eventPicker(seq.event, function (v) { seq.event = v; changed(true); }, "seg-seq-event") : null);
      rows.push(seqRow);
      if (seq.mode) rows.push(h("div", { class: "seg-sub" }, filterRows(seq.where, seq.event, "where")));
    }
    return rows;
  }

  // ---------------------------------------------------------------- segment conditions
  function renderSegment(node) {
    var el = h("select", { class: "seg-segment-picker seg-grow", "aria-label": "Segment", disabled: readonly });
    el.appendChild(h("option", { value: "", text: "Choose a segment…" }));
    var found = false;
    meta.segments.forEach(function (s) {
      var sel = s.key.toLowerCase() === String(node.segment).toLowerCase();
      found = found || sel;
      el.appendChild(h("option", { value: s.key, text: s.name + " (" + s.key + ")", selected: sel }));
    });
    if (node.segment && !found) el.appendChild(h("option", { value: node.segment, text: node.segment, selected: true }));
    el.addEventListener("change", function () { node.segment = el.value; changed(false); });
    return h("div", { class: "seg-cond-row" },
      dragHandle(false),
      h("span", { class: "seg-cond-kind" }, "Segment"),
      h("span", null, "Customer"),
      select([["in", "is in"], ["not_in", "is not in"]], node.operator, function (v) { node.operator = v; changed(false); },
        { class: "seg-op", "aria-label": "in or not in" }),
      picker(el, {}),
      nodeTools(node, false));
  }

  // ------------------------------------------------------------------ errors
  function setProblems(list) {
    errorsById = {};
    (list || []).forEach(function (p) {
      var where = A.locate(state, p.pointer);
      (errorsById[where.id] = errorsById[where.id] || []).push(p.message);
    });
    showErrors();
  }
  function showErrors() {
    mount.querySelectorAll("[data-id]").forEach(function (el) {
      var id = el.getAttribute("data-id");
      var list = el.querySelector(":scope > .seg-errors");
      var messages = errorsById[id] || [];
      el.classList.toggle("seg-has-error", messages.length > 0);
      if (list) list.replaceChildren.apply(list, messages.map(function (m) { return h("li", null, m); }));
    });
  }

  // ------------------------------------------------------------------ preview
  function csrfToken() {
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (field) return field.value;
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function schedulePreview() {
    clearTimeout(previewTimer);
    setText("seg-preview-status", "Updating…");
    previewTimer = setTimeout(runPreview, 400);
  }
  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }
  function runPreview() {
    var seq = ++previewSeq;
    var body = { definition: A.toDefinition(state, types) };
    if (config.segmentKey) body.segment = config.segmentKey;
    fetch(config.previewUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, status: r.status, data: data }; });
    }).then(function (res) {
      if (seq !== previewSeq) return;
      var preview = document.getElementById("seg-preview");
      if (!res.ok) {
        setProblems(res.data.errors || []);
        setText("seg-preview-count", "–");
        setText("seg-preview-status", res.status === 400 ? "Fix the highlighted conditions to see a preview." : (res.data.message || "Preview failed."));
        if (preview) preview.setAttribute("data-state", "invalid");
        return;
      }
      setProblems([]);
      var d = res.data;
      setText("seg-preview-count", Number(d.count).toLocaleString("en"));
      setText("seg-preview-summary", d.summary || "");
      setText("seg-preview-status", "Up to date.");
      var diff = document.getElementById("seg-preview-diff");
      if (diff) {
        var hasDiff = !!config.segmentKey && d.added !== null && d.added !== undefined;
        diff.hidden = !hasDiff;
        if (hasDiff) {
          setText("seg-preview-added", Number(d.added).toLocaleString("en"));
          setText("seg-preview-removed", Number(d.removed).toLocaleString("en"));
        }
      }
      var sample = document.getElementById("seg-preview-sample");
      if (sample) {
        var items = (d.sample || []).map(function (c) {
          return h("li", { title: c.email || "" }, c.external_id || c.email || "id:" + c.id,
            c.email && c.external_id ? h("span", { class: "seg-muted" }, " · " + c.email) : null);
        });
        if (!items.length) items = [h("li", { class: "seg-muted" }, "Nobody matches yet.")];
        sample.replaceChildren.apply(sample, items);
      }
      if (preview) {
        preview.setAttribute("data-state", "ready");
        preview.setAttribute("data-count", String(d.count));
      }
    }).catch(function () {
      if (seq === previewSeq) setText("seg-preview-status", "Preview unavailable (network error).");
    });
  }

  // ------------------------------------------------------------------ JSON view, kind, tags
  function wireJson() {
    var apply = document.getElementById("seg-json-apply");
    if (!apply || !jsonText) return;
    apply.addEventListener("click", function () {
      var err = document.getElementById("seg-json-error");
      try {
        var def = JSON.parse(jsonText.value);
        if (!def || typeof def !== "object" || Array.isArray(def)) throw new Error("The definition must be a JSON object.");
        state = A.fromDefinition(def);
        err.textContent = "";
        jsonText.blur();
        changed(true);
      } catch (e) {
        err.textContent = e.message;
      }
    });
  }
  function wireKind() {
    var kind = document.getElementById("id_kind");
    var module = document.getElementById("seg-builder-module");
    if (!kind || !module) return;
    function toggle() { module.hidden = kind.value !== "dynamic"; }
    kind.addEventListener("change", toggle);
    toggle();
  }
  function wireTagChooser() {
    var el = document.querySelector("input[data-tag-chooser]");
    if (!el || !window.TomSelect) return;
    new window.TomSelect(el, {
      create: true, persist: false, delimiter: ",", plugins: ["remove_button"],
      options: meta.tags.map(function (t) { return { value: t, text: t }; }),
    });
  }

  function start(data) {
    meta = data;
    if (!mount) {
      // Static and external segments: no conditions, only the tag chooser.
      wireTagChooser();
      return;
    }
    meta.attributes.forEach(function (a) { attrs[a.key] = a; types[a.key] = a.type; });
    render();
    sync();
    wireJson();
    wireKind();
    wireTagChooser();
    if (config.problems && config.problems.length) setProblems(config.problems);
    runPreview();
    mount.setAttribute("data-ready", "1");
  }

  fetch(config.metaUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(start)
    .catch(function (e) {
      if (mount) mount.replaceChildren(h("p", { class: "seg-error-text" }, "The condition builder could not load: " + e.message));
    });
})();
