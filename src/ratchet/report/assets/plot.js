/* The progress plot of a run, drawn as inline SVG: one dot per measured experiment, the running
   best as a step line, discarded experiments faint, failures marked under the axis. Hovering a
   mark shows the experiment's hypothesis and verdict. Shared by the HTML report and the dashboard;
   no dependencies, so a report works offline. */
(function (global) {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var W = 960, H = 410, M = { left: 78, right: 24, top: 30, bottom: 46 };
  var NO_NUMBER = { crash: 1, timeout: 1, invalid: 1, tampered: 1, abandoned: 1 };

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "-";
    return String(Number(value.toPrecision(6)));
  }

  function niceTicks(lo, hi, count) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10(span / count)));
    var err = (count * step) / span;
    if (err <= 0.15) step *= 10; else if (err <= 0.35) step *= 5; else if (err <= 0.75) step *= 2;
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
    return ticks;
  }

  /* The y range: every number, except far outliers on the losing side (a diverged run's 1e9
     would flatten the whole story); those are drawn as triangles at the edge. */
  function yDomain(points, bests, minimize) {
    var values = points.map(function (p) { return p.metric; });
    if (!values.length) return [0, 1];
    var ref = bests.length ? bests : values;
    var lo = Math.min.apply(null, ref), hi = Math.max.apply(null, ref);
    var span = hi - lo || Math.abs(hi) * 0.1 || 1;
    var limitBad = minimize ? hi + 4 * span : lo - 4 * span;
    var kept = values.filter(function (v) { return minimize ? v <= limitBad : v >= limitBad; });
    var ymin = Math.min.apply(null, kept.concat(ref)), ymax = Math.max.apply(null, kept.concat(ref));
    var pad = (ymax - ymin || Math.abs(ymax) * 0.1 || 1) * 0.06;
    return [ymin - pad, ymax + pad];
  }

  function render(container, view, options) {
    options = options || {};
    var rows = view.experiments || [];
    var minimize = view.direction !== "maximize";
    var points = rows.filter(function (r) { return r.verdict && r.metric !== null && r.metric !== undefined; });
    var failures = rows.filter(function (r) { return r.verdict && (r.metric === null || r.metric === undefined) && NO_NUMBER[r.verdict]; });
    var decided = rows.filter(function (r) { return r.verdict && r.best !== null && r.best !== undefined; });
    var inFlight = view.in_flight || null;
    var lastId = rows.length ? rows[rows.length - 1].id : 0;
    var dom = yDomain(points, decided.map(function (r) { return r.best; }), minimize);
    var x0 = -0.5, x1 = Math.max(lastId, 1) + 0.5;
    var sx = function (x) { return M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right); };
    var sy = function (y) { return M.top + (1 - (y - dom[0]) / (dom[1] - dom[0])) * (H - M.top - M.bottom); };
    var bottom = H - M.bottom;

    container.textContent = "";
    container.classList.add("ratchet-plot");
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "progress of run " + view.name }, container);
    var tip = document.createElement("div");
    tip.className = "plot-tooltip";
    tip.hidden = true;
    container.appendChild(tip);

    // Axes and grid.
    var grid = el("g", { class: "grid" }, svg);
    niceTicks(dom[0], dom[1], 6).forEach(function (t) {
      el("line", { x1: M.left, x2: W - M.right, y1: sy(t), y2: sy(t) }, grid);
      el("text", { x: M.left - 8, y: sy(t) + 4, "text-anchor": "end", class: "tick" }, grid).textContent = fmt(t);
    });
    niceTicks(0, x1 - 0.5, 10).filter(function (t) { return t === Math.round(t); }).forEach(function (t) {
      el("line", { x1: sx(t), x2: sx(t), y1: bottom, y2: bottom + 5, class: "xtick" }, grid);
      el("text", { x: sx(t), y: bottom + 18, "text-anchor": "middle", class: "tick" }, grid).textContent = String(t);
    });
    el("line", { x1: M.left, x2: W - M.right, y1: bottom, y2: bottom, class: "axis" }, svg);
    el("line", { x1: M.left, x2: M.left, y1: M.top, y2: bottom, class: "axis" }, svg);
    el("text", { x: (M.left + W - M.right) / 2, y: H - 6, "text-anchor": "middle", class: "label" }, svg).textContent = "experiment";
    el("text", { x: 14, y: (M.top + bottom) / 2, "text-anchor": "middle", class: "label",
      transform: "rotate(-90 14 " + (M.top + bottom) / 2 + ")" }, svg).textContent =
      view.metric + (minimize ? " (lower is better)" : " (higher is better)");

    // The running best: a step that only moves when a keep lands.
    if (decided.length) {
      var d = "M" + sx(decided[0].id) + "," + sy(decided[0].best);
      for (var i = 1; i < decided.length; i++) d += "H" + sx(decided[i].id) + "V" + sy(decided[i].best);
      d += "H" + sx(inFlight ? Math.max(inFlight.id, lastId) : lastId);
      el("path", { d: d, class: "best-line" }, svg);
    }

    function hover(node, row, text) {
      node.addEventListener("mouseenter", function () {
        tip.textContent = "";
        var head = document.createElement("div");
        head.className = "tip-head";
        head.textContent = text;
        var body = document.createElement("div");
        body.className = "tip-hypothesis";
        body.textContent = row.hypothesis || "(no hypothesis)";
        tip.appendChild(head);
        tip.appendChild(body);
        if (row.reason && row.verdict !== "keep" && row.verdict !== "baseline") {
          var why = document.createElement("div");
          why.className = "tip-reason";
          why.textContent = row.reason;
          tip.appendChild(why);
        }
        tip.hidden = false;
        var box = container.getBoundingClientRect(), mark = node.getBoundingClientRect();
        var left = mark.left - box.left + mark.width / 2 + 12, top = mark.top - box.top - 8;
        if (left + 320 > box.width) left = Math.max(0, mark.left - box.left - 332);
        tip.style.left = left + "px";
        tip.style.top = Math.max(0, top) + "px";
      });
      node.addEventListener("mouseleave", function () { tip.hidden = true; });
      if (options.onSelect) node.addEventListener("click", function () { options.onSelect(row.id); });
    }

    // Repeated measurements: a thin bar from the lowest to the highest sample.
    points.forEach(function (p) {
      if (!p.spread) return;
      var lo = Math.max(M.top, Math.min(bottom, sy(p.spread[0]))), hi = Math.max(M.top, Math.min(bottom, sy(p.spread[1])));
      el("line", { x1: sx(p.id), x2: sx(p.id), y1: lo, y2: hi, class: "spread " + p.verdict }, svg);
    });

    // Faint discards first, so keeps are drawn on top of them.
    var order = { keep: 3, baseline: 3 };
    points.slice().sort(function (a, b) { return (order[a.verdict] || 0) - (order[b.verdict] || 0); }).forEach(function (p) {
      var y = sy(p.metric), node;
      var cls = "point " + p.verdict;
      if (y < M.top || y > bottom) {
        var edge = y < M.top ? M.top : bottom, dir = y < M.top ? -1 : 1, x = sx(p.id);
        node = el("path", { d: "M" + (x - 5) + "," + (edge - dir * 2) + "L" + (x + 5) + "," + (edge - dir * 2) + "L" + x + "," + (edge + dir * 6) + "Z",
          class: cls + " clipped", "data-id": p.id }, svg);
      } else {
        var r = p.verdict === "keep" || p.verdict === "baseline" ? 6 : 4.5;
        node = el("circle", { cx: sx(p.id), cy: y, r: r, class: cls, "data-id": p.id }, svg);
      }
      hover(node, p, "#" + p.id + " " + p.verdict + " · " + view.metric + " " + fmt(p.metric) +
        (p.samples > 1 ? " (" + p.samples + " samples)" : "") + (p.overfit ? " · overfit" : ""));
    });

    failures.forEach(function (f) {
      var x = sx(f.id), y = bottom - 8;
      var g = el("g", { class: "failure " + f.verdict, "data-id": f.id }, svg);
      el("rect", { x: x - 6, y: y - 6, width: 12, height: 12, class: "hit" }, g);
      el("path", { d: "M" + (x - 4) + "," + (y - 4) + "L" + (x + 4) + "," + (y + 4) + "M" + (x + 4) + "," + (y - 4) + "L" + (x - 4) + "," + (y + 4) }, g);
      hover(g, f, "#" + f.id + " " + f.verdict);
    });

    if (inFlight && decided.length) {
      var best = decided[decided.length - 1].best;
      var ring = el("circle", { cx: sx(inFlight.id), cy: sy(best), r: 7, class: "in-flight", "data-id": inFlight.id }, svg);
      hover(ring, { id: inFlight.id, hypothesis: inFlight.hypothesis, verdict: null }, "#" + inFlight.id + " running");
    }

    // Legend.
    var legend = el("g", { class: "legend", transform: "translate(" + (W - M.right - 290) + ",6)" }, svg);
    [["keep", "kept"], ["discard", "discarded"], ["baseline", "baseline"]].forEach(function (item, k) {
      el("circle", { cx: k * 100 + 6, cy: 6, r: 5, class: "swatch " + item[0] }, legend);
      el("text", { x: k * 100 + 16, y: 10, class: "tick" }, legend).textContent = item[1];
    });
    return svg;
  }

  global.RatchetPlot = { render: render, format: fmt };
})(window);
