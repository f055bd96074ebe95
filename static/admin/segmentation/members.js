/*
 * Manual (static) segment members: customer search on the left, members on the right.
 * Drag one customer or a multi-selection (SortableJS MultiDrag) from left to right to add,
 * from right to left or onto the remove zone to remove; buttons do the same for people who
 * do not drag. Every change is saved at once by the admin JSON endpoints (ledger reason
 * "manual") and both lists are reloaded, so what is shown is what is stored.
 * Both lists are keyset-paged (`after=<id>`); the page history is kept here for "Prev".
 * Large changes ("add all results", big CSV uploads) answer 202 with a job: its progress is
 * polled from the REST job detail (`status_url`) and both lists reload when it ends.
 */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("seg-members-config").textContent);
  var lists = {
    search: { el: document.getElementById("seg-search-list"), url: config.searchUrl, form: document.getElementById("seg-search-form"),
              cursors: [null], page: 0, nextAfter: null, params: {} },
    members: { el: document.getElementById("seg-members-list"), url: config.membersUrl, form: document.getElementById("seg-members-form"),
               cursors: [null], page: 0, nextAfter: null, params: {} },
  };
  var busy = false;
  var POLL_MS = 1000;

  function h(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined && text !== null) el.textContent = text;
    return el;
  }
  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function flash(message, isError) {
    var el = document.getElementById("seg-flash");
    el.textContent = message;
    el.classList.toggle("seg-flash-error", !!isError);
    el.hidden = false;
  }
  function setCount(n) {
    if (n === undefined || n === null) return;
    document.getElementById("seg-member-count").textContent = Number(n).toLocaleString("en");
  }

  function formParams(form) {
    var params = {};
    new FormData(form).forEach(function (v, k) { if (String(v).trim()) params[k] = String(v).trim(); });
    return params;
  }
  function query(params) {
    return Object.keys(params).map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]); }).join("&");
  }

  function row(c, which) {
    var li = h("li", "seg-person");
    li.setAttribute("data-customer", c.id);
    if (which === "search" && c.member) li.classList.add("seg-is-member");
    if (config.canChange && !(which === "search" && c.member)) {
      var cb = h("input");
      cb.type = "checkbox";
      cb.className = "seg-pick";
      cb.setAttribute("aria-label", "Select " + c.label);
      cb.addEventListener("change", function () {
        if (cb.checked) window.Sortable.utils.select(li); else window.Sortable.utils.deselect(li);
        updateButtons();
      });
      li.appendChild(cb);
    }
    var main = h("div", "seg-person-main");
    main.appendChild(h("strong", null, c.label));
    main.appendChild(h("span", "seg-muted", [c.name, c.email !== c.label ? c.email : ""].filter(Boolean).join(" · ") || "\u00a0"));
    li.appendChild(main);
    var side = h("div", "seg-person-side");
    side.textContent = which === "search" ? (c.member ? "member" : c.country || "") : c.entered || "";
    li.appendChild(side);
    return li;
  }

  function load(which) {
    var l = lists[which];
    var params = Object.assign({}, l.params, { page_size: config.pageSize });
    var after = l.cursors[l.page];
    if (after !== null) params.after = after;
    var sep = l.url.indexOf("?") >= 0 ? "&" : "?";
    // Responses can arrive out of order (a reload after a change, then a new search): only the
    // latest request of each list may draw it.
    var seq = (l.seq = (l.seq || 0) + 1);
    return fetch(l.url + sep + query(params), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (seq !== l.seq) return;
        var items = data.results.map(function (c) { return row(c, which); });
        if (!items.length) {
          var empty = h("li", "seg-list-empty", which === "search" ? "No customers match this search." : "No members yet. Drag customers here.");
          items = [empty];
        }
        // MultiDrag remembers selected elements; forget the ones about to be replaced.
        l.el.querySelectorAll("li.seg-selected").forEach(function (li) { window.Sortable.utils.deselect(li); });
        l.el.replaceChildren.apply(l.el, items);
        l.nextAfter = data.next_after;
        document.querySelector("[data-pager=" + which + "][data-dir=prev]").disabled = l.page === 0;
        document.querySelector("[data-pager=" + which + "][data-dir=next]").disabled = !data.has_next;
        document.querySelector("[data-page-label=" + which + "]").textContent = "Page " + (l.page + 1);
        if (which === "members") setCount(data.total);
        l.el.setAttribute("data-loaded", String(Date.now()));
        updateButtons();
      });
  }
  function reloadBoth() { return Promise.all([load("search"), load("members")]); }

  function selectedIds(listEl) {
    return Array.prototype.map.call(listEl.querySelectorAll("li.seg-selected[data-customer]"), function (li) {
      return Number(li.getAttribute("data-customer"));
    });
  }
  function updateButtons() {
    var add = document.getElementById("seg-add-selected");
    var remove = document.getElementById("seg-remove-selected");
    if (add) add.disabled = busy || !selectedIds(lists.search.el).length;
    if (remove) remove.disabled = busy || !selectedIds(lists.members.el).length;
    [lists.search.el, lists.members.el].forEach(function (el) {
      el.querySelectorAll("li[data-customer]").forEach(function (li) {
        var cb = li.querySelector(".seg-pick");
        if (cb) cb.checked = li.classList.contains("seg-selected");
      });
    });
  }

  function post(url, body) {
    busy = true;
    updateButtons();
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    }).then(function (r) {
      return r.json().then(function (data) { return { ok: r.ok, status: r.status, data: data }; });
    }).then(function (res) {
      if (res.status === 202) return watchJob(res.data, function (result) { flash(addedText(result) + "."); });
      busy = false;
      if (!res.ok) { flash(res.data.message || "The change was refused.", true); return reloadBoth(); }
      var d = res.data;
      setCount(d.member_count);
      if ("added" in d) flash(addedText(d) + ".");
      else flash("Removed " + d.removed + (d.unchanged ? " (" + d.unchanged + " were not members)" : "") + ".");
      return reloadBoth();
    }).catch(function () { busy = false; flash("Network error: nothing was changed.", true); return reloadBoth(); });
  }
  function addedText(d) {
    return "Added " + num(d.added) + (d.unchanged ? " (" + num(d.unchanged) + " already members)" : "");
  }
  function num(n) { return Number(n || 0).toLocaleString("en"); }

  // A change running as a background job: show its progress until it ends, then reload.
  function watchJob(job, onDone) {
    busy = true;
    updateButtons();
    var box = document.getElementById("seg-job");
    var label = document.getElementById("seg-job-label");
    var bar = document.getElementById("seg-job-progress");
    box.hidden = false;
    box.setAttribute("data-status", "queued");
    label.textContent = "Adding " + (job.total ? num(job.total) + " customers" : "customers") + " in the background…";
    bar.removeAttribute("value");
    flash("The change is large, so it runs in the background; you can keep working or leave this page.");
    return new Promise(function (resolve) {
      function finish(ok, message, result) {
        busy = false;
        box.setAttribute("data-status", ok ? "succeeded" : "failed");
        if (ok) { bar.max = 1; bar.value = 1; }
        label.textContent = message;
        if (result && result.member_count !== null && result.member_count !== undefined) setCount(result.member_count);
        if (ok) onDone(result || {}); else flash(message, true);
        reloadBoth().then(resolve, resolve);
      }
      function poll() {
        fetch(job.status_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { if (!r.ok) throw new Error("status " + r.status); return r.json(); })
          .then(function (j) {
            box.setAttribute("data-status", j.status);
            if (j.status === "succeeded") {
              finish(true, "Done: " + num(j.progress) + " of " + num(j.total) + " customers checked, " + num(j.result.added) + " added.", j.result);
            } else if (j.status === "failed") {
              var why = (j.errors && j.errors[0] && j.errors[0].message) || "unknown error";
              finish(false, "The change stopped: " + why + " (" + num((j.result || {}).added) + " added before it stopped).", j.result);
            } else {
              if (j.total) { bar.max = j.total; bar.value = j.progress; }
              label.textContent = j.status === "running" && j.total
                ? "Adding in the background: " + num(j.progress) + " of " + num(j.total) + " customers checked…"
                : "Waiting for a worker to start the change…";
              window.setTimeout(poll, POLL_MS);
            }
          })
          .catch(function () { window.setTimeout(poll, POLL_MS * 3); });
      }
      poll();
    });
  }
  function add(ids) { return ids.length ? post(config.addUrl, { ids: ids }) : Promise.resolve(); }
  function remove(ids) { return ids.length ? post(config.removeUrl, { ids: ids }) : Promise.resolve(); }
  function droppedIds(evt) {
    var items = evt.items && evt.items.length ? evt.items : [evt.item];
    return items.map(function (li) { return Number(li.getAttribute("data-customer")); }).filter(Boolean);
  }

  function wireSortable() {
    if (!config.canChange || !window.Sortable) return;
    var common = { multiDrag: true, selectedClass: "seg-selected", avoidImplicitDeselect: true, animation: 120,
                   filter: ".seg-list-empty, .seg-is-member, .seg-remove-hint, .seg-pick", preventOnFilter: false,
                   onSelect: updateButtons, onDeselect: updateButtons };
    window.Sortable.create(lists.search.el, Object.assign({}, common, {
      group: { name: "people", pull: "clone", put: function (to, from) { return from.el === lists.members.el; } },
      sort: false,
      onAdd: function (evt) { remove(droppedIds(evt)); },
    }));
    window.Sortable.create(lists.members.el, Object.assign({}, common, {
      group: { name: "people", pull: true, put: function (to, from) { return from.el === lists.search.el; } },
      sort: false,
      onAdd: function (evt) { add(droppedIds(evt)); },
    }));
    var zone = document.getElementById("seg-remove-zone");
    if (zone) {
      window.Sortable.create(zone, {
        group: { name: "people", pull: false, put: function (to, from) { return from.el === lists.members.el; } },
        filter: ".seg-remove-hint",
        onAdd: function (evt) { remove(droppedIds(evt)); },
      });
    }
  }

  function wire() {
    Object.keys(lists).forEach(function (which) {
      var l = lists[which];
      l.form.addEventListener("submit", function (e) {
        e.preventDefault();
        l.params = formParams(l.form);
        l.cursors = [null];
        l.page = 0;
        load(which);
      });
      document.querySelectorAll("[data-pager=" + which + "]").forEach(function (btn) {
        btn.addEventListener("click", function () {
          if (btn.getAttribute("data-dir") === "next" && l.nextAfter !== null) {
            l.cursors[l.page + 1] = l.nextAfter;
            l.page += 1;
          } else if (btn.getAttribute("data-dir") === "prev" && l.page > 0) {
            l.page -= 1;
          }
          load(which);
        });
      });
    });
    var addSel = document.getElementById("seg-add-selected");
    if (addSel) addSel.addEventListener("click", function () { add(selectedIds(lists.search.el)); });
    var remSel = document.getElementById("seg-remove-selected");
    if (remSel) remSel.addEventListener("click", function () { remove(selectedIds(lists.members.el)); });
    var addAll = document.getElementById("seg-add-all");
    if (addAll) {
      addAll.addEventListener("click", function () {
        var params = formParams(lists.search.form);
        var what = Object.keys(params).length ? "every customer matching this search" : "EVERY customer";
        if (window.confirm("Add " + what + " to the segment?")) post(config.addUrl, { search: params });
      });
    }
    var upload = document.getElementById("seg-upload");
    if (upload) {
      upload.addEventListener("submit", function (e) {
        e.preventDefault();
        var file = document.getElementById("seg-upload-file").files[0];
        if (!file) { flash("Choose a CSV file first.", true); return; }
        var data = new FormData();
        data.append("file", file);
        fetch(config.uploadUrl, { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() }, body: data })
          .then(function (r) { return r.json().then(function (d) { return { ok: r.ok, status: r.status, data: d }; }); })
          .then(function (res) {
            if (!res.ok) { flash(res.data.message || "Upload refused.", true); return; }
            if (res.status === 202) {
              showUnmatched(res.data);
              return watchJob(res.data, function (result) { showReport(Object.assign({}, res.data, result)); });
            }
            showReport(res.data);
            reloadBoth();
          })
          .catch(function () { flash("Network error: nothing was uploaded.", true); });
      });
    }
  }

  function showReport(d) {
    setCount(d.member_count);
    flash("Upload: " + d.matched + " matched, " + d.added + " added, " + d.unchanged + " already members, " +
          d.unmatched_count + " unmatched.", d.unmatched_count > 0 && d.matched === 0);
    showUnmatched(d);
  }
  function showUnmatched(d) {
    var box = document.getElementById("seg-upload-report");
    box.replaceChildren();
    if (!d.unmatched_count) { box.hidden = true; return; }
    box.appendChild(h("strong", null, d.unmatched_count + " row(s) did not match a customer" +
      (d.unmatched_count > d.unmatched.length ? " (first " + d.unmatched.length + " shown)" : "") + ":"));
    var table = h("table", "seg-table");
    var head = h("tr");
    ["Row", "Value", "Why"].forEach(function (t) { head.appendChild(h("th", null, t)); });
    table.appendChild(h("thead")).appendChild(head);
    var body = table.appendChild(h("tbody"));
    d.unmatched.forEach(function (u) {
      var tr = h("tr");
      tr.appendChild(h("td", null, String(u.row)));
      tr.appendChild(h("td", null, u.value || "–"));
      tr.appendChild(h("td", null, u.reason));
      body.appendChild(tr);
    });
    box.appendChild(table);
    box.hidden = false;
  }

  wire();
  wireSortable();
  reloadBoth();
})();
