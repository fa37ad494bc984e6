/* The progress plot of a run, drawn as inline SVG: one dot per measured experiment, the running
   best as a step line, discarded experiments faint, failures marked under the axis. Hovering a
   mark shows the experiment's hypothesis and verdict. Shared by the HTML report and the dashboard;
   no dependencies, so a report works offline.

   The drawing is made at the width it has on screen (and made again when the window is
   resized), so its labels keep their size on a phone instead of shrinking with the picture. The
   y axis is linear or log as the read model decided (view.y_axis, see report/data.py). */
(function (global) {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var NO_NUMBER = { crash: 1, timeout: 1, invalid: 1, tampered: 1, abandoned: 1 };
  var FAILURES = "crash, timeout, invalid, tampered: no number";

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

  /* Ticks of a log axis, as plain numbers, for a range given in powers of ten: every decade
     (every second or third one when there are many), with 2 and 5 between when there are few. */
  function logTicks(lo, hi, count) {
    var first = Math.floor(lo), last = Math.ceil(hi), decades = last - first;
    var every = Math.max(1, Math.ceil(decades / count)), within = decades <= 2 ? [1, 2, 5] : [1];
    var ticks = [];
    for (var k = first; k <= last; k += every) {
      within.forEach(function (m) {
        var v = m * Math.pow(10, k), e = Math.log10(v);
        if (e >= lo - 1e-9 && e <= hi + 1e-9) ticks.push(Number(v.toPrecision(12)));
      });
    }
    return ticks;
  }

  /* The y range, among plain numbers or their logarithms: every number, except far outliers on
     the losing side (a diverged run's 1e9 would flatten the whole story); those are drawn as
     triangles at the edge. The same rule as y_limits in report/data.py. */
  function yDomain(values, bests, minimize) {
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

  // A legend's sample of a mark, drawn in CSS (an <svg> here would be taken for the plot).
  function swatch(kind) {
    var node = document.createElement("span");
    node.className = "swatch " + kind;
    node.setAttribute("aria-hidden", "true");
    if (kind === "failure") node.textContent = "\u2715";
    return node;
  }

  function render(container, view, options) {
    options = options || {};
    container.__ratchetPlot = { view: view, options: options };
    var rows = view.experiments || [];
    var minimize = view.direction !== "maximize";
    var log = !!(view.y_axis && view.y_axis.scale === "log");
    var points = rows.filter(function (r) { return r.verdict && r.metric !== null && r.metric !== undefined; });
    var failures = rows.filter(function (r) { return r.verdict && (r.metric === null || r.metric === undefined) && NO_NUMBER[r.verdict]; });
    var decided = rows.filter(function (r) { return r.verdict && r.best !== null && r.best !== undefined; });
    // Every experiment in flight (several with [run] workers = N); an older view names one.
    var inFlight = view.running || (view.in_flight ? [view.in_flight] : []);
    var newestInFlight = inFlight.reduce(function (m, f) { return Math.max(m, f.id); }, 0);
    var lastId = rows.length ? rows[rows.length - 1].id : 0;

    container.textContent = "";
    container.classList.add("ratchet-plot");
    // The drawing's own size is its size on screen: 11px labels stay 11px.
    var W = Math.max(280, Math.floor(container.clientWidth) || 960);
    var H = Math.round(Math.min(410, Math.max(250, W * 0.43)));
    var narrow = W < 600;
    var M = { left: narrow ? 64 : 78, right: narrow ? 10 : 24, top: 14, bottom: 46 };
    container.__ratchetPlot.width = W;

    // On a log axis a position is the number's logarithm; 0 or less falls off the bottom edge.
    var t = log ? function (v) { return v > 0 ? Math.log10(v) : -Infinity; } : function (v) { return v; };
    var finite = function (v) { return isFinite(v); };
    var dom = yDomain(points.map(function (p) { return t(p.metric); }).filter(finite),
      decided.map(function (r) { return t(r.best); }).filter(finite), minimize);
    var x0 = -0.5, x1 = Math.max(lastId, 1) + 0.5;
    var sx = function (x) { return M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right); };
    var sy = function (y) {
      var v = t(y);
      return v === -Infinity ? H * 10 : M.top + (1 - (v - dom[0]) / (dom[1] - dom[0])) * (H - M.top - M.bottom);
    };
    var bottom = H - M.bottom;

    var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "progress of run " + view.name, "data-y-scale": log ? "log" : "linear" }, container);
    var tip = document.createElement("div");
    tip.className = "plot-tooltip";
    tip.hidden = true;
    container.appendChild(tip);

    // Axes and grid.
    var grid = el("g", { class: "grid" }, svg);
    var yTicks = log ? logTicks(dom[0], dom[1], 6) : niceTicks(dom[0], dom[1], narrow ? 4 : 6);
    yTicks.forEach(function (v) {
      el("line", { x1: M.left, x2: W - M.right, y1: sy(v), y2: sy(v) }, grid);
      el("text", { x: M.left - 8, y: sy(v) + 4, "text-anchor": "end", class: "tick" }, grid).textContent = fmt(v);
    });
    niceTicks(0, x1 - 0.5, Math.max(3, Math.round(W / 96))).filter(function (v) { return v === Math.round(v); }).forEach(function (v) {
      el("line", { x1: sx(v), x2: sx(v), y1: bottom, y2: bottom + 5, class: "xtick" }, grid);
      el("text", { x: sx(v), y: bottom + 18, "text-anchor": "middle", class: "tick" }, grid).textContent = String(v);
    });
    el("line", { x1: M.left, x2: W - M.right, y1: bottom, y2: bottom, class: "axis" }, svg);
    el("line", { x1: M.left, x2: M.left, y1: M.top, y2: bottom, class: "axis" }, svg);
    el("text", { x: (M.left + W - M.right) / 2, y: H - 6, "text-anchor": "middle", class: "label" }, svg).textContent = "experiment";
    el("text", { x: 14, y: (M.top + bottom) / 2, "text-anchor": "middle", class: "label",
      transform: "rotate(-90 14 " + (M.top + bottom) / 2 + ")" }, svg).textContent =
      view.metric + (minimize ? " (lower is better" : " (higher is better") + (log ? ", log scale)" : ")");

    // The running best: a step that only moves when a keep lands.
    if (decided.length) {
      var d = "M" + sx(decided[0].id) + "," + sy(decided[0].best);
      for (var i = 1; i < decided.length; i++) d += "H" + sx(decided[i].id) + "V" + sy(decided[i].best);
      d += "H" + sx(Math.max(newestInFlight, lastId));
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
        var box = container.getBoundingClientRect(), mark = node.getBoundingClientRect(), width = tip.offsetWidth;
        var left = mark.left - box.left + mark.width / 2 + 12, top = mark.top - box.top - 8;
        if (left + width > box.width) left = mark.left - box.left - width - 12;  // left of the mark
        if (left < 0) left = Math.max(0, box.width - width);  // a narrow window: inside the plot
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
    var order = { keep: 3, baseline: 3 }, clipped = 0;
    points.slice().sort(function (a, b) { return (order[a.verdict] || 0) - (order[b.verdict] || 0); }).forEach(function (p) {
      var y = sy(p.metric), node;
      var cls = "point " + p.verdict;
      if (y < M.top || y > bottom) {
        var edge = y < M.top ? M.top : bottom, dir = y < M.top ? -1 : 1, x = sx(p.id);
        node = el("path", { d: "M" + (x - 5) + "," + (edge - dir * 2) + "L" + (x + 5) + "," + (edge - dir * 2) + "L" + x + "," + (edge + dir * 6) + "Z",
          class: cls + " clipped", "data-id": p.id }, svg);
        clipped++;
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
      el("path", { d: "M" + (x - 4) + "," + (y - 4) + "L" + (x + 4) + "," + (y + 4) + "M" + (x + 4) + "," + (y - 4) + "L" + (x - 4) + "," + (y + 4), class: "failure-mark" }, g);
      hover(g, f, "#" + f.id + " " + f.verdict);
    });

    if (decided.length) {
      var best = decided[decided.length - 1].best;
      inFlight.forEach(function (f) {
        var ring = el("circle", { cx: sx(f.id), cy: Math.max(M.top, Math.min(bottom, sy(best))), r: 7, class: "in-flight", "data-id": f.id }, svg);
        hover(ring, { id: f.id, hypothesis: f.hypothesis, verdict: null },
          "#" + f.id + " running" + (f.worker !== null && f.worker !== undefined ? " on worker " + f.worker : ""));
      });
    }

    // The legend, as text beside the drawing: it wraps on a narrow window instead of shrinking.
    var legend = document.createElement("div");
    legend.className = "plot-legend";
    var items = [["keep", "kept"], ["discard", "discarded"], ["baseline", "baseline"], ["best", "running best"],
      ["failure", FAILURES + (failures.some(function (f) { return f.verdict === "abandoned"; }) ? " (or abandoned)" : "")]];
    if (points.some(function (p) { return NO_NUMBER[p.verdict]; })) items.push(["crash", "failed, with a number"]);
    if (clipped) items.push(["clipped", "off the scale"]);
    if (inFlight.length) items.push(["in-flight", "in flight"]);
    items.forEach(function (item) {
      var span = document.createElement("span");
      span.className = "legend-item";
      span.dataset.mark = item[0];
      span.appendChild(swatch(item[0]));
      span.appendChild(document.createTextNode(item[1]));
      legend.appendChild(span);
    });
    container.appendChild(legend);
    if (view.y_axis && view.y_axis.note) {
      var note = document.createElement("div");
      note.className = "plot-note muted";
      note.textContent = view.y_axis.note;
      container.appendChild(note);
    }
    return svg;
  }

  // A resized window redraws each plot whose width changed, once per frame at most.
  var pending = false;
  global.addEventListener("resize", function () {
    if (pending) return;
    pending = true;
    global.requestAnimationFrame(function () {
      pending = false;
      Array.prototype.forEach.call(document.querySelectorAll(".ratchet-plot"), function (node) {
        var drawn = node.__ratchetPlot;
        if (drawn && Math.max(280, Math.floor(node.clientWidth) || 960) !== drawn.width) render(node, drawn.view, drawn.options);
      });
    });
  });

  global.RatchetPlot = { render: render, format: fmt };
})(window);
