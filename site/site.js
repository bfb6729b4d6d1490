/* saliency-bench site: shared helpers (no framework). Data come from data/*.js scripts, as pages may be file://. */
"use strict";
var SB = (function () {
  var site = window.SALIENCY_SITE || { models: [] };

  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "html") node.innerHTML = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return; }
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  function escape(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }
  /* the board's notes are Markdown-light: `code`, **strong**, *emphasis* */
  function md(text) {
    return escape(text || "").replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/\*([^*\s][^*]*)\*/g, "<em>$1</em>");
  }
  function params() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var i = part.indexOf("=");
      out[decodeURIComponent(i < 0 ? part : part.slice(0, i))] = i < 0 ? "" : decodeURIComponent(part.slice(i + 1));
    });
    return out;
  }
  function href(page, values) {
    var parts = Object.keys(values).filter(function (k) { return values[k] !== undefined && values[k] !== null; })
      .map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(values[k]); });
    return page + (parts.length ? "#" + parts.join("&") : "");
  }
  function methodHref(model, name) { return href("method.html", { model: model, method: name }); }
  function compareHref(model, a, b) { return href("compare.html", { model: model, a: a, b: b }); }
  function load(src) {
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = function () { reject(new Error("cannot load " + src)); };
      document.head.appendChild(script);
    });
  }
  function model(key) {
    var models = site.models;
    for (var i = 0; i < models.length; i++) if (models[i].key === key) return models[i];
    return models[0] || null;
  }
  function row(modelEntry, name) {
    var rows = modelEntry ? modelEntry.methods : [];
    for (var i = 0; i < rows.length; i++) if (rows[i].name === name) return rows[i];
    return null;
  }
  function details(key, name) { return (window.SALIENCY_DETAILS || {})[key + "/" + name]; }
  function loadDetails(modelEntry, rowEntry) {
    if (details(modelEntry.key, rowEntry.name)) return Promise.resolve(details(modelEntry.key, rowEntry.name));
    return load("data/" + modelEntry.key + "/" + rowEntry.slug + ".js").then(function () {
      return details(modelEntry.key, rowEntry.name);
    });
  }

  /* numbers as on leaderboard.md: 3 decimals, intervals with 2; differences as `check` prints them (3, signed) */
  /* Python's format: the double's exact decimal value rounded half to even (toFixed rounds exact ties up) */
  function fixed(v, digits) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    var x = Number(v), text = x.toFixed(digits), exact = Math.abs(x).toFixed(100), point = exact.indexOf(".");
    if (/^50*$/.test(exact.slice(point + 1 + digits))) {
      var down = exact.slice(0, point + 1 + digits);
      if (Number(down.charAt(down.length - 1)) % 2 === 0) text = (x < 0 ? "-" : "") + down.replace(/\.$/, "");
    }
    return text;
  }
  function signed(v, digits) {
    if (v === null || v === undefined) return "–";
    var text = fixed(v, digits === undefined ? 3 : digits);
    return (Number(v) >= 0 && text.charAt(0) !== "-" ? "+" : "") + text;
  }
  function interval(lo, hi, digits, sign) {
    if (lo === null || lo === undefined || hi === null || hi === undefined) return "";
    var f = sign ? signed : fixed;
    return "[" + f(lo, digits) + ", " + f(hi, digits) + "]";
  }

  function verdict(value) {
    var kind = value === "pass" ? "pass" : value === "fail" ? "fail" : "und";
    var text = value === "pass" ? "✓ pass" : value === "fail" ? "✗ fail" : "– undecided";
    return el("span", { "class": "v " + kind, text: text });
  }
  function letters(modelEntry, rowEntry) {
    var span = el("span", { "class": "letters" });
    modelEntry.rules.forEach(function (rule, i) {
      var v = rowEntry.verdicts[rule.key];
      var mark = v === "pass" ? "✓" : v === "fail" ? "✗" : "–";
      add(span, [i ? " " : "", el("span", { "class": v === "pass" ? "p" : v === "fail" ? "f" : "",
        title: rule.key + ": " + (v || "undecided"), text: rule.letter + ":" + mark })]);
    });
    return span;
  }

  /* a column's scale for its bars: [min(0, lows), max(1, highs)] */
  function scale(modelEntry, index) {
    var low = 0, high = 1;
    modelEntry.methods.forEach(function (r) {
      var c = r.cells[index];
      if (c.lo !== undefined && c.lo !== null) low = Math.min(low, c.lo);
      if (c.hi !== undefined && c.hi !== null) high = Math.max(high, c.hi);
    });
    return [low, high];
  }
  function bar(cellEntry, range, marks) {
    var span = range[1] - range[0];
    function pos(v) { return (100 * (v - range[0]) / span).toFixed(2) + "%"; }
    var node = el("span", { "class": "bar", "aria-hidden": "true" });
    if (cellEntry.lo !== null && cellEntry.lo !== undefined && cellEntry.hi !== null && cellEntry.hi !== undefined)
      add(node, el("span", { "class": "ci", style: "left:" + pos(cellEntry.lo) + ";width:" +
        (100 * (cellEntry.hi - cellEntry.lo) / span).toFixed(2) + "%" }));
    (marks || []).forEach(function (m) {
      add(node, el("span", { "class": "mk", style: "left:" + pos(m.value), title: m.key + " threshold " + m.value }));
    });
    add(node, el("span", { "class": "pt", style: "left:" + pos(cellEntry.v) }));
    return node;
  }
  function valueCell(modelEntry, rowEntry, index, range) {
    var column = modelEntry.columns[index], c = rowEntry.cells[index];
    var td = el("td", { "class": "num", "data-sort": c.v === undefined ? "" : c.v });
    if (c.v === undefined || c.v === null || column.signed || c.lo === undefined || c.lo === null) {
      add(td, c.t);
      return td;
    }
    add(td, el("span", { "class": "iv" }, el("span", { "class": "t", text: c.t }), bar(c, range, column.marks)));
    return td;
  }

  /* every column of the table: header, how a cell is drawn, and its sort key (null sorts last) */
  function columns(m) {
    var RANK = { pass: 2, "–": 1, fail: 0 };
    var list = [
      { label: "method", cls: "name", key: function (r) { return r.name.toLowerCase(); }, text: true,
        cell: function (r) {
          return el("td", { "class": "name" }, el("a", { href: methodHref(m.key, r.name), text: r.name }),
            r.status === "failed" ? " (failed)" : "");
        } },
      { label: "overall", better: "higher", key: function (r) { return RANK[r.overall]; },
        cell: function (r) { return el("td", {}, verdict(r.overall)); } },
      { label: "family", key: function (r) { return r.family; }, text: true,
        cell: function (r) { return el("td", { text: r.family }); } },
      { label: "positive", key: function (r) { return r.positive ? 1 : 0; },
        cell: function (r) { return el("td", { text: r.positive ? "yes" : "no" }); } }
    ];
    m.columns.forEach(function (c, i) {
      var range = scale(m, i);
      list.push({ label: c.label, cls: "num", better: c.better,
        key: function (r) { var v = r.cells[i].v; return v === undefined ? null : v; },
        cell: function (r) { return valueCell(m, r, i, range); } });
    });
    list.push({ label: "verdicts", key: function (r) {
      return Object.keys(r.verdicts).filter(function (k) { return r.verdicts[k] === "pass"; }).length;
    }, better: "higher", cell: function (r) { return el("td", {}, letters(m, r)); } });
    if (m.speed) {
      list.push({ label: "ms/img", cls: "num", better: "lower", key: function (r) { return r.speed ? r.speed.ms : null; },
        cell: function (r) { return el("td", { "class": "num", text: r.speed ? r.speed.t[0] : "–" }); } });
      list.push({ label: "× floor", cls: "num", better: "lower",
        key: function (r) { return r.speed ? r.speed.ratio : null; },
        cell: function (r) { return el("td", { "class": "num", text: r.speed ? r.speed.t[1] : "–" }); } });
    }
    m.paper.forEach(function (label, i) {
      list.push({ label: label, cls: "num", key: function (r) { return r.paper[i] === "" ? null : Number(r.paper[i]); },
        cell: function (r) { return el("td", { "class": "num", text: r.paper[i] }); } });
    });
    return list;
  }

  function header(active) {
    var nav = el("nav", { "aria-label": "site" },
      el("a", { href: "index.html", "aria-current": active === "index" ? "page" : null, text: "Board" }),
      el("a", { href: "compare.html", "aria-current": active === "compare" ? "page" : null, text: "Compare two methods" }));
    return el("header", { "class": "site" }, el("div", { "class": "wrap" },
      el("a", { "class": "brand", href: "index.html", text: "saliency-bench" }), nav));
  }
  /* the model switcher: a link per model; ``target(model)`` gives each link's page, or null where it has none */
  function switcher(current, target) {
    var nav = el("nav", { "class": "switcher", "aria-label": "model" });
    site.models.forEach(function (m) {
      var link = target(m);
      if (link === null) add(nav, el("span", { "class": "absent", title: "not on this model's board", text: m.title }));
      else add(nav, el("a", { href: link, "aria-current": m.key === current ? "page" : null, text: m.title }));
    });
    return nav;
  }
  /* one tile of a sprite, shown at ``shown`` CSS px: the sheet scaled and shifted inside a clipping box */
  function tile(src, index, size, columns, sheet, alt, shown) {
    shown = shown || 96;
    var s = shown / size, x = (index % columns) * size * s, y = Math.floor(index / columns) * size * s;
    return el("span", { "class": "tile", style: "width:" + shown + "px;height:" + shown + "px" },
      el("img", { src: src, alt: alt || "", style: "width:" + (sheet[0] * s) + "px;height:" +
        (sheet[1] * s) + "px;margin-left:-" + x + "px;margin-top:-" + y + "px" }));
  }
  function fail(main, error) {
    add(main, el("p", { "class": "error", role: "alert", text: String(error && error.message || error) }));
  }

  return { site: site, el: el, add: add, md: md, params: params, href: href, methodHref: methodHref,
    compareHref: compareHref, load: load, model: model, row: row, loadDetails: loadDetails, fixed: fixed,
    signed: signed, interval: interval, verdict: verdict, letters: letters, scale: scale, valueCell: valueCell,
    columns: columns, header: header, switcher: switcher, tile: tile, fail: fail };
})();
