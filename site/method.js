/* A method page: its row, every check's metrics and verdicts, maps, curve, failures image by image, peers. */
"use strict";
(function () {
  var el = SB.el, add = SB.add;
  var main = document.getElementById("main");
  var MEASURES = { spearman_hog: "Spearman on HOG", spearman_abs: "Spearman of |map|",
    spearman_signed: "Spearman of the signed map", ssim: "SSIM" };

  function section(id, title, body) {
    return body ? el("section", { id: id, "aria-labelledby": id + "-h" }, el("h2", { id: id + "-h", tabindex: "-1", text: title }), body)
      : null;
  }
  function shown(v) {
    if (v === null || v === undefined) return "–";
    if (Array.isArray(v)) return v.map(shown).join(", ");
    if (typeof v === "object") return Object.keys(v).map(function (k) { return k + " " + shown(v[k]); }).join(", ");
    return String(v);
  }
  function kv(object) {
    var dl = el("dl", { "class": "kv" });
    Object.keys(object || {}).forEach(function (k) {
      var v = object[k];
      add(dl, [el("dt", { text: k }), el("dd", { text: shown(v) })]);
    });
    return dl;
  }
  function rowTable(m, r) {
    var cols = SB.columns(m), tr = el("tr", { "class": r.control ? "control" : null });
    cols.forEach(function (c) { add(tr, c.cell(r)); });
    return el("div", { "class": "table-scroll", tabindex: "0", role: "region", "aria-label": "its row on the board" },
      el("table", { "class": "board" }, el("thead", {}, el("tr", {}, cols.map(function (c) {
        return el("th", { scope: "col", "class": c.cls || null, text: c.label });
      }))), el("tbody", {}, tr)));
  }

  function checkCard(c) {
    var card = el("div", { "class": "card", id: "check-" + c.name }, el("h3", {}, el("code", { text: c.name })),
      el("p", { "class": "small muted", text: c.description }));
    if (c.status === "n/a") add(card, el("p", { "class": "reason" }, el("strong", { text: "n/a: " }), c.reason));
    else if (c.status !== "ok") add(card, el("p", { "class": "reason" }, el("strong", { text: c.status + ": " }), c.reason));
    if (c.metrics.length) {
      add(card, el("div", { "class": "table-scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, ["metric", "value [95% interval]", "n", ""].map(function (h) {
          return el("th", { scope: "col", text: h });
        }))),
        el("tbody", {}, c.metrics.map(function (x) {
          return el("tr", { "class": x.headline ? "headline" : null },
            el("td", {}, el("code", { text: x.name }), x.headline ? " (headline)" : "",
              x.better ? el("span", { "class": "muted small", text: " " + x.better + " is better" }) : ""),
            el("td", { "class": "num", text: x.text }), el("td", { "class": "num", text: x.n === null ? "–" : String(x.n) }),
            el("td", { "class": "small muted", text: x.notes }));
        })))));
    }
    if (c.verdicts.length) add(card, el("ul", { "class": "verdicts" }, c.verdicts.map(function (v) {
      return el("li", {}, el("strong", { text: v.letter + " " + v.key + " " }), SB.verdict(v.verdict),
        el("span", { html: SB.md(" measured " + v.measured + "; " + v.test + ".") }),
        v.reason ? el("span", { "class": "muted", text: " Why: " + v.reason + "." }) : "");
    })));
    if (c.per_class) add(card, el("p", { "class": "small" }, "Per class (hits / trials): " +
      Object.keys(c.per_class).map(function (k) { return k + " " + c.per_class[k].hits + "/" + c.per_class[k].trials; })
        .join(", ")));
    add(card, el("details", { "class": "small" }, el("summary", { text: "parameters and how it is read" }), kv(c.params),
      c.read ? el("p", { html: SB.md(c.read) }) : null, el("p", { text: "Combined as: " + c.combine })));
    return card;
  }

  function tileBox(img, label) { return el("div", { "class": "tilebox" }, img, el("span", { text: label })); }
  function item(m, ev, it) {
    var tiles = el("div", { "class": "tiles" });
    if (m.inputs && it.input !== undefined)
      add(tiles, tileBox(SB.tile(m.inputs, it.input, ev.tile, m.input_columns, m.input_sheet, "input image " + it.image),
        "image " + it.image));
    it.tiles.forEach(function (t) {
      add(tiles, tileBox(SB.tile(ev.sprite, t.tile, ev.tile, ev.columns, ev.sheet, t.label + " (image " + it.image + ")"),
        t.label));
    });
    if (it.curve) add(tiles, tileBox(spark(it.curve), "its cascade"));
    return el("figure", { "class": "item" }, tiles, it.tiles.length && it.caption === "image " + it.image ? null :
      el("figcaption", {}, it.caption, it.note ? " · " + it.note : ""));
  }
  function spark(values) {
    var w = 96, h = 96, pts = [];
    values.forEach(function (v, i) {
      if (v !== null) pts.push((4 + i * (w - 8) / Math.max(1, values.length - 1)).toFixed(1) + "," + (h - 6 - (v + 0.2) / 1.2 * (h - 12)).toFixed(1));
    });
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 96 96"); svg.setAttribute("width", "96"); svg.setAttribute("height", "96");
    svg.setAttribute("role", "img"); svg.setAttribute("aria-label", "Spearman on HOG along the cascade: " + values.join(", "));
    svg.innerHTML = '<rect x="0" y="0" width="96" height="96" fill="#fff" stroke="#bbb"/>' +
      '<line x1="0" x2="96" y1="' + (h - 6 - 0.2 / 1.2 * (h - 12)).toFixed(1) + '" y2="' + (h - 6 - 0.2 / 1.2 * (h - 12)).toFixed(1) + '" stroke="#ccc"/>' +
      '<polyline fill="none" stroke="' + SB.site.palette.lines[0] + '" stroke-width="2" points="' + pts.join(" ") + '"/>';
    return svg;
  }
  function grid(m, ev) {
    return el("div", { "class": "items" }, ev.grid.map(function (it) { return item(m, ev, it); }));
  }
  function evidence(m, d) {
    var ev = d.evidence;
    if (!ev) return el("p", { "class": "muted", text: "No pictures of this method in this site (its maps were not rendered)." });
    var box = el("div", {}, el("p", { "class": "small", html: SB.md("For each check, the " + ev.k + " images where the " +
      "method does worst and best by its stored per-image values. Pointing: the asked class's map, its peak (orange square), " +
      "the tolerance (orange circle) and the class's mask (white line, black outside); the restricted game outlines every " +
      "class present. Each map has its own scale (viridis 0..max; a signed map RdBu ±max|m|).") }));
    ev.checks.forEach(function (c) {
      add(box, el("h3", {}, el("code", { text: c.check }), el("span", { "class": "muted small",
        text: " ranked by its per-image " + c.metric + " (" + c.worse + " is worse)" })));
      ["worst", "best"].forEach(function (side) {
        add(box, el("div", { "class": "side" }, el("h4", { text: side === "worst" ? "Where it does worst" : "Where it does best" }),
          el("div", { "class": "items" }, c[side].map(function (it) { return item(m, ev, it); }))));
      });
    });
    return box;
  }
  function maps(m, r, d) {
    var box = el("div", {});
    if (d.evidence) add(box, [el("p", { "class": "small", text: "Its maps for the two top-scoring classes present in each image." }), grid(m, d.evidence)]);
    var figure = m.figures["maps_" + r.family];
    if (figure) add(box, [el("h3", { text: "Its family on one image" }), el("div", { "class": "figure-scroll" },
      el("img", { src: figure, alt: "maps of every " + r.family + " method for two classes of one image", loading: "lazy" })),
      el("p", { "class": "small" }, el("a", { href: figure, text: "open the figure at full size" }))]);
    return box.childNodes.length ? box : null;
  }

  function curve(d) {
    if (!d.curves) return null;
    var measures = Object.keys(MEASURES).filter(function (k) { return d.curves.method[k]; });
    var holder = el("div", {});
    var pick = el("select", { id: "measure", onchange: function () { draw(pick.value); } },
      measures.map(function (k) { return el("option", { value: k, text: MEASURES[k] }); }));
    function draw(measure) {
      holder.textContent = "";
      add(holder, chart(d, measure));
    }
    draw(measures[0]);
    return el("div", {}, el("div", { "class": "pickers" }, el("label", { "for": "measure" }, "similarity", pick)), holder,
      el("p", { "class": "small muted", text: "Similarity of the map after re-initialising the layers cumulatively from the " +
        "logits (left) down to all of them (right) with the trained model's map; the band is the 95% interval over " +
        "images and weight draws. The controls (grey, dashed) explain nothing: a method should fall well below edge." }));
  }
  function chart(d, measure) {
    var layers = d.curves.layers, W = 640, H = 300, L = 64, R = 16, T = 12, B = 80;
    var x = function (i) { return L + i * (W - L - R) / Math.max(1, layers.length - 1); };
    var y = function (v) { return T + (1 - (v + 0.2) / 1.25) * (H - T - B); };
    var pal = SB.site.palette, parts = [];
    [-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1].forEach(function (v) {
      parts.push('<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="' + (v === 0 ? "#aaa" : "#eee") + '"/>' +
        '<text x="' + (L - 6) + '" y="' + (y(v) + 4) + '" text-anchor="end">' + v.toFixed(1) + "</text>");
    });
    layers.forEach(function (layer, i) {
      parts.push('<text transform="translate(' + (x(i) + 3) + "," + (H - B + 10) + ') rotate(-50)" text-anchor="end" font-size="10">' +
        (layer || "(the rest)").replace(/&/g, "&amp;").replace(/</g, "&lt;") + "</text>");
    });
    function line(points, colour, width, dash) {
      var p = points.map(function (q, i) { return q[0] === null ? null : x(i).toFixed(1) + "," + y(q[0]).toFixed(1); })
        .filter(Boolean);
      return '<polyline fill="none" stroke="' + colour + '" stroke-width="' + width + '"' + (dash ? ' stroke-dasharray="' + dash + '"' : "") + ' points="' + p.join(" ") + '"/>';
    }
    Object.keys(d.curves.controls).forEach(function (name, j) {
      var pts = d.curves.controls[name][measure];
      if (pts) parts.push(line(pts, pal.control, 1.5, j ? "2 3" : "6 3"));
    });
    var mine = d.curves.method[measure];
    var upper = mine.map(function (q, i) { return q[2] === null ? null : x(i).toFixed(1) + "," + y(q[2]).toFixed(1); }).filter(Boolean);
    var lower = mine.map(function (q, i) { return q[1] === null ? null : x(i).toFixed(1) + "," + y(q[1]).toFixed(1); }).filter(Boolean).reverse();
    parts.push('<polygon fill="' + pal.lines[5] + '" fill-opacity="0.35" points="' + upper.concat(lower).join(" ") + '"/>');
    parts.push(line(mine, pal.lines[0], 2.5));
    mine.forEach(function (q, i) {
      if (q[0] !== null) parts.push('<circle cx="' + x(i) + '" cy="' + y(q[0]) + '" r="3" fill="' + pal.lines[0] + '"><title>' +
        (layers[i] || "(the rest)") + ": " + SB.fixed(q[0], 3) + " " + SB.interval(q[1], q[2], 2) + "</title></circle>");
    });
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("class", "curve");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", MEASURES[measure] + " along the cascade: " + mine.map(function (q, i) {
      return (layers[i] || "(the rest)") + " " + SB.fixed(q[0], 3);
    }).join(", "));
    svg.innerHTML = parts.join("");
    var legend = el("div", { "class": "legend" }, el("span", {}, el("i", { style: "border-color:" + pal.lines[0] }), "this method (band: 95% interval)"),
      Object.keys(d.curves.controls).map(function (name, j) {
        return el("span", {}, el("i", { "class": "dash", style: "border-color:" + pal.control + (j ? ";border-top-style:dotted" : "") }), name + " (control)");
      }));
    return el("div", {}, svg, legend);
  }

  function peers(m, r, d) {
    var box = el("div", {});
    if (d.paper.length) add(box, [el("h3", { text: "The seed paper's values" }), el("div", { "class": "table-scroll" },
      el("table", {}, el("thead", {}, el("tr", {}, ["", "paper (another model and dataset)", "this board"].map(function (h) {
        return el("th", { scope: "col", text: h });
      }))), el("tbody", {}, d.paper.map(function (p) {
        return el("tr", {}, el("td", { text: p.label }), el("td", { "class": "num", text: p.paper }), el("td", { "class": "num", text: p.board }));
      })))), el("p", { "class": "small muted", text: "Shown for orientation only: the paper measured VGG-16 on VOC07 and ImageNet." })]);
    add(box, el("h3", { text: "Speed" }));
    add(box, el("p", { text: d.speed ? d.speed.t[0] + " ms per image (batch of 64), " + d.speed.t[1] + " the floor (" +
      SB.fixed(d.timing.floor_ms_per_image, 2) + " ms/img: one forward and one backward to the input), on " + d.timing.device + "."
      : "Not timed on this board." }));
    if (!d.peers.length) return box;
    add(box, [el("h3", { text: "Peers: its nearest methods on the board and the controls" }),
      el("p", { "class": "small muted", text: "Differences " + r.name + " minus the peer on each column, with the 95% interval " +
        "(paired over the same images where marked *), as saliency-bench check prints them." })]);
    var tbody = el("tbody");
    d.peers.forEach(function (p) {
      p.rows.forEach(function (x, i) {
        add(tbody, el("tr", {}, i ? null : el("td", { "class": "name", rowspan: p.rows.length },
          el("a", { href: SB.methodHref(m.key, p.name), text: p.name }), el("br"), el("span", { "class": "muted small", text: p.why }),
          el("br"), el("a", { "class": "small", href: SB.compareHref(m.key, r.name, p.name), text: "compare" })),
          el("td", { text: x.label }), el("td", { "class": "num", text: SB.signed(x.diff) }),
          el("td", { "class": "num", text: SB.interval(x.low, x.high, 3, true) + (x.paired ? "*" : "") }),
          el("td", { text: x.reading })));
      });
    });
    add(box, el("div", { "class": "table-scroll" }, el("table", {}, el("thead", {}, el("tr", {},
      ["peer", "column", "difference", "interval", "reading"].map(function (h) { return el("th", { scope: "col", text: h }); }))), tbody)));
    return box;
  }
  function provenance(d) {
    var p = d.provenance, model = p.model || {}, data = p.dataset || {};
    return el("div", {}, el("h3", { text: "Settings" }), Object.keys(d.settings).length ? kv(d.settings)
      : el("p", { "class": "muted", text: "No settings: the method has no parameter." }),
      el("h3", { text: "Provenance" }), kv({ distribution: d.distribution + " " + d.version, model: model.name + " (" +
        model.input_size + " px, " + model.num_classes + " classes)", "weights sha256": model.weights_sha256 || p.weights_sha256,
        dataset: data.name + " (split " + data.split + ", seed " + data.seed + ")", images: p.images, seed: p.seed,
        "batch size": p.batch_size, precision: model.precision, versions: p.versions }));
  }

  function comparePicker(m, r) {
    var pick = el("select", { id: "other" }, m.methods.filter(function (x) { return x.name !== r.name; }).map(function (x) {
      return el("option", { value: x.name, text: x.name });
    }));
    return el("form", { "class": "pickers", onsubmit: function (e) {
      e.preventDefault(); location.href = SB.compareHref(m.key, r.name, pick.value);
    } }, el("label", { "for": "other" }, "compare with", pick), el("button", { "class": "plain", type: "submit", text: "Compare" }));
  }
  /* in-page links that scroll (the hash holds the page's parameters, so they must not change it) */
  function contents(entries) {
    return el("nav", { "class": "contents small", "aria-label": "on this page" }, "On this page: ",
      entries.map(function (e, i) {
        return [i ? " · " : "", el("a", { href: "#" + e[0], onclick: function (event) {
          event.preventDefault();
          var target = document.getElementById(e[0]);
          if (target) { target.scrollIntoView(); target.querySelector("h2").focus({ preventScroll: true }); }
        }, text: e[1] })];
      }));
  }
  function draw(m, r, d) {
    main.textContent = "";
    add(main, [el("p", { "class": "small" }, el("a", { href: SB.href("index.html", { model: m.key }), text: "← the board of " + m.title })),
      el("h1", {}, el("code", { text: r.name })),
      el("div", { "class": "meta" }, el("span", { text: "family " + r.family }), el("span", { text: "positive " + (r.positive ? "yes" : "no") }),
        r.layer ? el("span", { text: "layer " + r.layer }) : null, el("span", { text: d.distribution + " " + d.version }),
        el("span", {}, "overall ", SB.verdict(r.overall))),
      SB.switcher(m.key, function (x) { return SB.row(x, r.name) ? SB.methodHref(x.key, r.name) : null; }),
      comparePicker(m, r),
      contents([["checks", "checks"], ["maps", "maps"], ["curve", "randomisation curve"],
        ["failures", "where it fails"], ["peers", "paper, speed, peers"], ["provenance", "settings, provenance"]]),
      section("row", "Its row on the board", rowTable(m, r)),
      section("checks", "Every check: metrics, intervals, verdicts", el("div", { "class": "cards" }, d.checks.map(checkCard))),
      section("maps", "Maps", maps(m, r, d)),
      section("curve", "Cascading randomisation", curve(d)),
      section("failures", "Where it fails, image by image", evidence(m, d)),
      section("peers", "Paper, speed and peers", peers(m, r, d)),
      section("provenance", "Settings and provenance", provenance(d))]);
  }
  function render() {
    var p = SB.params(), m = SB.model(p.model), r = SB.row(m, p.method);
    main.textContent = "";
    if (!m || !r) {
      SB.fail(main, "No method '" + (p.method || "") + "' on " + (m ? m.title : "this site") + "'s board.");
      if (m) add(main, el("p", {}, el("a", { href: SB.href("index.html", { model: m.key }), text: "the board" })));
      return;
    }
    document.title = "saliency-bench: " + r.name + " on " + m.title;
    SB.loadDetails(m, r).then(function (d) { draw(m, r, d); }, function (e) { SB.fail(main, e); });
  }

  document.body.insertBefore(SB.header("method"), document.body.firstChild);
  window.addEventListener("hashchange", render);
  render();
})();
