/* Compare two methods: the paired differences of `saliency-bench compare A B`, and their maps side by side. */
"use strict";
(function () {
  var el = SB.el, add = SB.add;
  var main = document.getElementById("main");

  /* the [value, low, high] rows of A - B: stored for this order, stored exactly reversed, or negated (pairs.py) */
  function oriented(doc, a, b) {
    if (a === b) return doc.values[a].map(function (v) { return v[0] === null ? null : [0, 0, 0]; });
    if (doc.reverse[a + "|" + b]) return doc.reverse[a + "|" + b];
    if (doc.pairs[a + "|" + b]) return doc.pairs[a + "|" + b];
    var stored = doc.pairs[b + "|" + a];
    return stored ? stored.map(function (t) {
      return t === null ? null : [t[0] ? -t[0] : t[0], t[2] === null ? null : -t[2], t[1] === null ? null : -t[1]];
    }) : null;
  }
  /* paired.reading: better / worse for A where the interval excludes 0 on a side of the metric's direction */
  function reading(value, low, high, better) {
    var excludes = low !== null && high !== null && (low > 0 || high < 0);
    if (!excludes) return { excludes: false, text: "no clear difference" };
    if (better !== "higher" && better !== "lower") return { excludes: true, text: "differs" };
    return { excludes: true, text: (value > 0) === (better === "higher") ? "better" : "worse" };
  }
  /* compare's rows (compare --json), from the pairs document */
  function rows(doc, a, b) {
    var triples = oriented(doc, a, b) || [];
    return doc.rows.map(function (row, i) {
      var va = doc.values[a][i], vb = doc.values[b][i];
      var marked = (doc.headlines[a] || {})[row.check] || (doc.headlines[b] || {})[row.check];
      var out = { check: row.check, metric: row.metric, headline: marked === row.metric };
      if (va[1] === null || vb[1] === null || va[1] !== vb[1]) {
        out.a = out.b = out.value = out.low = out.high = null;
        out.excludes = false; out.reading = "not paired (no per-image values)";
        return out;
      }
      var t = triples[i] || [null, null, null];
      var r = t[0] === null ? { excludes: false, text: "no clear difference" } : reading(t[0], t[1], t[2], row.better);
      out.a = va[0]; out.b = vb[0]; out.value = t[0]; out.low = t[1]; out.high = t[2];
      out.excludes = r.excludes; out.reading = r.text;
      out.n = va[1];
      return out;
    });
  }

  function table(doc, a, b) {
    var head = ["metric", a, b, "difference A − B", "95% interval", "excludes 0", "reading for " + a];
    var last = null, body = el("tbody");
    rows(doc, a, b).forEach(function (r) {
      if (r.check !== last) add(body, el("tr", { "class": "group" }, el("th", { scope: "rowgroup", colspan: head.length },
        el("code", { text: r.check }))));
      last = r.check;
      add(body, row(r));
    });
    return [el("p", { "class": "scroll-hint", text: "The table scrolls sideways." }),
      el("div", { "class": "table-scroll", tabindex: "0", role: "region", "aria-label": "paired differences" },
      el("table", { id: "pairs" }, el("thead", {}, el("tr", {}, head.map(function (h) { return el("th", { scope: "col", text: h }); }))),
        body))];
  }
  function row(r) {
    return el("tr", { "class": r.headline ? "headline" : null, "data-check": r.check, "data-metric": r.metric },
      el("td", {}, el("code", { text: r.metric }), r.headline ? " *" : ""),
      el("td", { "class": "num", "data-key": "a", text: SB.fixed(r.a, 3) }),
      el("td", { "class": "num", "data-key": "b", text: SB.fixed(r.b, 3) }),
      el("td", { "class": "num", "data-key": "value", text: SB.signed(r.value, 3) }),
      el("td", { "class": "num", "data-key": "interval", text: SB.interval(r.low, r.high, 3, true) }),
      el("td", { "data-key": "excludes", text: r.value === null ? "" : r.excludes ? "yes" : "no" }),
      el("td", { "data-key": "reading", "class": r.excludes ? "clear" : null, text: r.reading }));
  }

  function mapsOf(m, row, d) {
    var box = el("div", {}, el("h3", {}, el("a", { href: SB.methodHref(m.key, row.name), text: row.name })));
    var ev = d && d.evidence;
    if (!ev) { add(box, el("p", { "class": "muted", text: "No maps of this method in this site." })); return box; }
    add(box, el("div", { "class": "items" }, ev.grid.map(function (it) {
      var tiles = el("div", { "class": "tiles" });
      if (m.inputs) add(tiles, el("div", { "class": "tilebox" },
        SB.tile(m.inputs, it.input, ev.tile, m.input_columns, m.input_sheet, "input image " + it.image),
        el("span", { text: "image " + it.image })));
      it.tiles.forEach(function (t) {
        add(tiles, el("div", { "class": "tilebox" }, SB.tile(ev.sprite, t.tile, ev.tile, ev.columns, ev.sheet, row.name + ": " + t.label),
          el("span", { text: t.label })));
      });
      return el("figure", { "class": "item" }, tiles);
    })));
    return box;
  }

  function picker(id, label, m, value) {
    return el("label", { "for": id }, label, el("select", { id: id }, m.methods.map(function (r) {
      return el("option", { value: r.name, selected: r.name === value, text: r.name });
    })));
  }
  function render() {
    var p = SB.params(), m = SB.model(p.model);
    main.textContent = "";
    if (!m) { SB.fail(main, "This site holds no board."); return; }
    var names = m.methods.map(function (r) { return r.name; });
    var a = names.indexOf(p.a) >= 0 ? p.a : names[0], b = names.indexOf(p.b) >= 0 ? p.b : names[Math.min(1, names.length - 1)];
    var form = el("form", { "class": "pickers", onsubmit: function (e) {
      e.preventDefault();
      location.hash = SB.href("", { model: m.key, a: form.querySelector("#pick-a").value, b: form.querySelector("#pick-b").value });
    } }, picker("pick-a", "A", m, a), picker("pick-b", "B", m, b),
      el("button", { "class": "plain", type: "submit", text: "Compare" }),
      el("button", { "class": "plain", type: "button", text: "Swap A and B", onclick: function () {
        location.hash = SB.href("", { model: m.key, a: b, b: a });
      } }));
    var body = el("div", { id: "result", "aria-live": "polite" });
    add(main, [el("h1", { text: "Compare two methods on " + m.title }),
      SB.switcher(m.key, function (x) { return SB.compareHref(x.key, SB.row(x, a) ? a : null, SB.row(x, b) ? b : null); }),
      el("p", { "class": "small", html: SB.md("The paired difference A − B of every metric over the same images, with its " +
        "percentile bootstrap interval (the board's settings; images resampled jointly for both): the numbers of " +
        "`saliency-bench compare A B`. * marks a check's headline metric. *excludes 0* says whether the difference is clear.") }),
      form, body]);
    if (!m.pairs) { SB.fail(body, "This board has no per-image values (leaderboard-values.json): nothing can be paired."); return; }
    var ra = SB.row(m, a), rb = SB.row(m, b);
    Promise.all([(window.SALIENCY_PAIRS || {})[m.key] ? null : SB.load("data/" + m.key + "/pairs.js"), SB.loadDetails(m, ra), SB.loadDetails(m, rb)]).then(function (got) {
      var doc = window.SALIENCY_PAIRS[m.key];
      add(body, [el("h2", {}, el("code", { text: a }), " minus ", el("code", { text: b })), table(doc, a, b),
        el("h2", { text: "Their maps side by side" }), el("div", { "class": "sidebyside" }, mapsOf(m, ra, got[1]), mapsOf(m, rb, got[2]))]);
    }, function (e) { SB.fail(body, e); });
  }

  document.body.insertBefore(SB.header("compare"), document.body.firstChild);
  window.addEventListener("hashchange", render);
  render();
})();
