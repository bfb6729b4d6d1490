/* The index: one table per model (a switcher between them), sortable by any column, filterable. */
"use strict";
(function () {
  var el = SB.el, add = SB.add;
  var main = document.getElementById("main");
  var state = { column: null, dir: 0, name: "", family: "", positive: "", verdict: "" };

  function matches(m, r) {
    if (state.name && r.name.toLowerCase().indexOf(state.name.toLowerCase()) < 0) return false;
    if (state.family && r.family !== state.family) return false;
    if (state.positive && (r.positive ? "yes" : "no") !== state.positive) return false;
    if (state.verdict) {
      var parts = state.verdict.split(":");
      var value = parts[0] === "overall" ? r.overall : r.verdicts[parts[0]];
      if ((value || "–") !== parts[1]) return false;
    }
    return true;
  }
  function compare(column, dir) {
    return function (a, b) {
      var x = column.key(a), y = column.key(b);
      if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    };
  }

  function fill(m, cols, tbody) {
    var rows = m.methods.filter(function (r) { return matches(m, r); });
    if (state.column !== null) rows = rows.map(function (r, i) { return [r, i]; }).sort(function (p, q) {
      return compare(cols[state.column], state.dir)(p[0], q[0]) || p[1] - q[1];
    }).map(function (p) { return p[0]; });
    tbody.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr", { "data-method": r.name, "data-family": r.family, "class": r.control ? "control" : null });
      cols.forEach(function (c) { add(tr, c.cell(r)); });
      add(tbody, tr);
    });
    document.getElementById("count").textContent = rows.length + " of " + m.methods.length + " methods shown";
  }

  function sortBy(m, cols, index, thead, tbody) {
    var column = cols[index];
    if (state.column === index) state.dir = -state.dir;
    else state.dir = column.text ? 1 : (column.better === "lower" ? 1 : -1);  /* best first, names A-Z */
    state.column = index;
    Array.prototype.forEach.call(thead.querySelectorAll("th"), function (th, i) {
      th.setAttribute("aria-sort", i === index ? (state.dir > 0 ? "ascending" : "descending") : "none");
    });
    fill(m, cols, tbody);
  }

  function table(m, cols) {
    var thead = el("thead"), tbody = el("tbody"), tr = el("tr");
    cols.forEach(function (c, i) {
      var title = c.better ? c.label + ": " + c.better + " is better" : "sort by " + c.label;
      add(tr, el("th", { scope: "col", "class": c.cls || null, "aria-sort": "none", "data-column": c.label },
        el("button", { type: "button", title: title, onclick: function () { sortBy(m, cols, i, thead, tbody); } },
          c.label)));
    });
    add(thead, tr);
    return { node: el("table", { "class": "board" }, el("caption", { "class": "muted small", style: "caption-side:bottom;text-align:left;padding:0.4rem",
      text: "Each number: the mean with its 95% bootstrap interval; the bar draws the interval (blue), the value (mark) and the verdict thresholds (dotted)." }), thead, tbody), tbody: tbody };
  }

  function select(label, id, options, value, onchange) {
    var node = el("select", { id: id, onchange: onchange });
    options.forEach(function (o) { add(node, el("option", { value: o[0], selected: o[0] === value, text: o[1] })); });
    return el("label", { "for": id }, label, node);
  }
  function filters(m, cols, tbody) {
    function update(key) { return function (event) { state[key] = event.target.value; fill(m, cols, tbody); }; }
    var verdicts = [["", "any"], ["overall:pass", "overall: pass"], ["overall:fail", "overall: fail"],
      ["overall:–", "overall: undecided"]];
    m.rules.forEach(function (r) {
      verdicts.push([r.key + ":pass", r.letter + " " + r.key + ": pass"]);
      verdicts.push([r.key + ":fail", r.letter + " " + r.key + ": fail"]);
    });
    return el("div", { "class": "filters", role: "search" },
      el("label", { "for": "f-name" }, "name", el("input", { id: "f-name", type: "search", value: state.name,
        placeholder: "e.g. gradcam", oninput: update("name") })),
      select("family", "f-family", [["", "all"]].concat(m.families.map(function (f) { return [f, f]; })),
        state.family, update("family")),
      select("positive", "f-positive", [["", "all"], ["yes", "yes"], ["no", "no"]], state.positive, update("positive")),
      select("verdict", "f-verdict", verdicts, state.verdict, update("verdict")));
  }

  function notes(m) {
    var box = el("details", { "class": "notes" }, el("summary", { text: "How to read this board" }));
    ["config", "read", "verdicts", "references", "speed"].forEach(function (k) {
      if (m.notes[k]) add(box, el("p", { html: SB.md(m.notes[k]) }));
    });
    return box;
  }
  function figures(m) {
    var names = Object.keys(m.figures);
    if (!names.length) return null;
    return el("p", { "class": "small" }, "Figures: ", names.map(function (n, i) {
      return [i ? ", " : "", el("a", { href: m.figures[n], text: n.replace(/_/g, " ") })];
    }));
  }

  function render() {
    var m = SB.model(SB.params().model);
    main.textContent = "";
    if (!m) { SB.fail(main, "This site holds no board."); return; }
    state = { column: null, dir: 0, name: "", family: "", positive: "", verdict: "" };
    var cols = SB.columns(m), built = table(m, cols);
    add(main, [el("h1", { text: "Saliency sanity checks: " + m.title }),
      m.description ? el("p", { "class": "muted", text: m.description }) : null,
      SB.switcher(m.key, function (x) { return SB.href("index.html", { model: x.key }); }),
      notes(m), filters(m, cols, built.tbody), el("p", { "class": "count", id: "count", "aria-live": "polite" }),
      el("p", { "class": "scroll-hint", text: "The table scrolls sideways: swipe it to see every column." }),
      el("div", { "class": "table-scroll", tabindex: "0", role: "region", "aria-label": "board of " + m.title },
        built.node),
      figures(m),
      el("p", { "class": "small" }, el("a", { href: SB.compareHref(m.key), text: "Compare any two methods" }),
        " (paired differences over the same images, as saliency-bench compare prints them).")]);
    fill(m, cols, built.tbody);
  }

  document.body.insertBefore(SB.header("index"), document.body.firstChild);
  window.addEventListener("hashchange", render);
  render();
})();
