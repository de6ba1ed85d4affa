// adadim dashboard: the page's behaviour. The data comes from the JSON block #adadim-data,
// written by adadim.analysis.dashboard; Plotly is inlined before this script.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("adadim-data").textContent);
  const GRID = 200; // points of the common x grid of a group's mean and band
  // Points drawn per plot: with many runs on screen each line is thinned further (min/max per
  // bucket), which keeps a redraw fast; a panel 500 pixels wide shows no more anyway.
  const PLOT_POINTS = 20000, PLANE_POINTS = 10000, MIN_LINE_POINTS = 60;

  // ---- small helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function decode(text, type) {
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    if (type === "u2") return new Uint16Array(bytes.buffer);
    if (type === "u4") return new Uint32Array(bytes.buffer);
    return new Float32Array(bytes.buffer);
  }
  function escapeHtml(s) {
    return String(s).replace(/[&<>"{}%]/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }
  function rgba(hex, alpha) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
  }
  function fmt(v) {
    return v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : +v.toPrecision(4);
  }

  const runs = D.runs;
  const groups = D.groups;
  const metricByKey = Object.fromEntries(D.metrics.map((m) => [m.key, m]));
  const runHover = runs.map(
    (r) =>
      `<b>${escapeHtml(r.id)}</b><br>group: ${escapeHtml(r.group)}` +
      r.hover.map(([k, v]) => `<br>${escapeHtml(k)}: ${escapeHtml(v)}`).join("")
  );

  const state = {
    runs: new Set(runs.map((_, i) => i)),
    metrics: D.defaults.metrics.filter((k) => k in metricByKey),
    x: "auto",
    logX: false,
    smooth: 0,
    band: false,
    bandKind: "std",
    acc: D.accuracy.default,
    eq: D.equilibrium.default,
    highlight: null,
  };

  // ---- data access -----------------------------------------------------------------------
  const cache = {};
  function seriesOf(key) {
    if (!cache[key]) {
      cache[key] = D.series[key].map(([r, x, y]) => ({ r, s: decode(x, runs[r].xt), y: decode(y, "f4") }));
    }
    return cache[key];
  }
  let planeCache = null;
  function planeData() {
    if (!planeCache) planeCache = D.plane.map(([r, h, i, p]) => ({ r, h: decode(h), i: decode(i), p: decode(p) }));
    return planeCache;
  }
  function interp(knots, v) {
    const [xs, ys] = knots;
    if (xs.length === 1) return ys[0];
    let lo = 0, hi = xs.length - 1;
    if (v <= xs[0]) return ys[0] + ((v - xs[0]) * (ys[1] - ys[0])) / (xs[1] - xs[0] || 1);
    if (v >= xs[hi]) return ys[hi] + ((v - xs[hi]) * (ys[hi] - ys[hi - 1])) / (xs[hi] - xs[hi - 1] || 1);
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] <= v) lo = mid; else hi = mid;
    }
    return ys[lo] + ((v - xs[lo]) * (ys[hi] - ys[lo])) / (xs[hi] - xs[lo] || 1);
  }
  function axisOf(metric) {
    return state.x === "auto" ? metric.x : state.x;
  }
  function toAxis(run, steps, axis) {
    const out = new Float64Array(steps.length);
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i];
      out[i] = axis === "progress" ? s / run.last : axis === "epoch" && run.knots ? interp(run.knots, s) : s;
    }
    return out;
  }
  // Centred moving average over a window of `frac` of the run's step range (in steps, so the
  // uneven spacing left by downsampling does not weight the mean).
  function smoothed(s, y, frac) {
    const n = y.length;
    if (!frac || n < 3) return y;
    const half = (frac * (s[n - 1] - s[0])) / 2;
    if (half <= 0) return y;
    const out = new Float64Array(n);
    let lo = 0, hi = 0, sum = 0;
    for (let i = 0; i < n; i++) {
      while (hi < n && s[hi] <= s[i] + half) sum += y[hi++];
      while (s[lo] < s[i] - half) sum -= y[lo++];
      out[i] = sum / (hi - lo);
    }
    return out;
  }

  // Indices of the min and max of each of `buckets` equal runs of points, plus both ends (the
  // same rule as the Python side), to thin lines further when many runs are on screen.
  function minmaxIdx(y, buckets) {
    const n = y.length;
    if (n <= 2 * buckets + 2) return null;
    const size = Math.ceil(n / buckets);
    const keep = new Set([0, n - 1]);
    for (let start = 0; start < n; start += size) {
      let lo = start, hi = start;
      for (let i = start + 1; i < Math.min(n, start + size); i++) {
        if (y[i] < y[lo]) lo = i;
        if (y[i] > y[hi]) hi = i;
      }
      keep.add(lo);
      keep.add(hi);
    }
    return Int32Array.from(keep).sort();
  }
  function pick(a, idx) {
    if (!idx) return a;
    const out = new Float64Array(idx.length);
    for (let i = 0; i < idx.length; i++) out[i] = a[idx[i]];
    return out;
  }
  function perLine(lines, budget) {
    return Math.max(MIN_LINE_POINTS, Math.floor(budget / Math.max(1, lines)));
  }

  // ---- traces ----------------------------------------------------------------------------
  function runTraces(metric, axis) {
    const shown = new Set();
    const traces = [];
    const lines = seriesOf(metric.key).filter((line) => state.runs.has(line.r));
    const buckets = (perLine(lines.length, PLOT_POINTS) - 2) >> 1;
    for (const line of lines) {
      const run = runs[line.r];
      const g = groups[run.g];
      const dim = state.highlight !== null && state.highlight !== line.r;
      const y = smoothed(line.s, line.y, state.smooth);
      const idx = minmaxIdx(y, buckets);
      traces.push({
        type: "scatter",
        mode: "lines",
        x: pick(toAxis(run, line.s, axis), idx),
        y: pick(y, idx),
        name: g.name,
        legendgroup: g.name,
        showlegend: !shown.has(run.g),
        line: { color: g.color, width: state.highlight === line.r ? 3 : 1.3 },
        opacity: dim ? 0.25 : 0.9,
        hovertemplate: `${runHover[line.r]}<br>${D.labels[axis]}: %{x:.4~g}<br>${escapeHtml(metric.label)}: %{y:.4~g}<extra></extra>`,
        meta: { run: run.id, group: g.name, kind: "run" },
      });
      shown.add(run.g);
    }
    return traces.concat(overlayTraces(metric, axis, buckets), hiddenGroups());
  }
  // Keys drawn dashed over this panel (method=steer's setpoint over the ratio it steers).
  function overlayTraces(metric, axis, buckets) {
    const traces = [];
    for (const [over, host] of Object.entries(D.overlays || {})) {
      if (host !== metric.key || !(over in metricByKey)) continue;
      const label = metricByKey[over].label;
      for (const line of seriesOf(over).filter((l) => state.runs.has(l.r))) {
        const run = runs[line.r];
        const g = groups[run.g];
        const idx = minmaxIdx(line.y, buckets);
        traces.push({
          type: "scatter",
          mode: "lines",
          x: pick(toAxis(run, line.s, axis), idx),
          y: pick(line.y, idx),
          name: `${g.name}: ${label}`,
          legendgroup: g.name,
          showlegend: false,
          line: { color: g.color, width: 1.1, dash: "dash" },
          opacity: state.highlight !== null && state.highlight !== line.r ? 0.25 : 0.9,
          hovertemplate: `${runHover[line.r]}<br>${D.labels[axis]}: %{x:.4~g}<br>${escapeHtml(label)}: %{y:.4~g}<extra></extra>`,
          meta: { run: run.id, group: g.name, kind: "overlay" },
        });
      }
    }
    return traces;
  }
  function bandTraces(metric, axis) {
    const traces = [];
    const byGroup = new Map();
    for (const line of seriesOf(metric.key)) {
      if (!state.runs.has(line.r)) continue;
      const run = runs[line.r];
      if (!byGroup.has(run.g)) byGroup.set(run.g, []);
      byGroup.get(run.g).push({ x: toAxis(run, line.s, axis), y: smoothed(line.s, line.y, state.smooth) });
    }
    for (const [gi, curves] of byGroup) {
      const g = groups[gi];
      let lo = Infinity, hi = -Infinity;
      for (const c of curves) {
        lo = Math.min(lo, c.x[0]);
        hi = Math.max(hi, c.x[c.x.length - 1]);
      }
      const logGrid = state.logX && lo > 0;
      const xs = [], mean = [], upper = [], lower = [], counts = [];
      const cursor = curves.map(() => 0);
      for (let k = 0; k < GRID; k++) {
        const f = GRID === 1 ? 0 : k / (GRID - 1);
        const t = logGrid ? lo * Math.pow(hi / lo, f) : lo + f * (hi - lo);
        const vals = [];
        curves.forEach((c, j) => {
          const n = c.x.length;
          if (t < c.x[0] || t > c.x[n - 1]) return;
          let p = cursor[j];
          while (p < n - 2 && c.x[p + 1] < t) p++;
          cursor[j] = p;
          const x0 = c.x[p], x1 = c.x[Math.min(p + 1, n - 1)];
          const y0 = c.y[p], y1 = c.y[Math.min(p + 1, n - 1)];
          vals.push(x1 > x0 ? y0 + ((t - x0) * (y1 - y0)) / (x1 - x0) : y0);
        });
        if (!vals.length) continue;
        const m = vals.reduce((a, b) => a + b, 0) / vals.length;
        let a, b;
        if (state.bandKind === "minmax") {
          a = Math.min(...vals);
          b = Math.max(...vals);
        } else {
          const sd = vals.length > 1 ? Math.sqrt(vals.reduce((s, v) => s + (v - m) ** 2, 0) / (vals.length - 1)) : 0;
          a = m - sd;
          b = m + sd;
        }
        xs.push(t); mean.push(m); lower.push(a); upper.push(b); counts.push(vals.length);
      }
      traces.push({
        type: "scatter",
        mode: "lines",
        x: xs.concat(xs.slice().reverse()),
        y: upper.concat(lower.slice().reverse()),
        fill: "toself",
        fillcolor: rgba(g.color, 0.18),
        line: { width: 0 },
        hoverinfo: "skip",
        legendgroup: g.name,
        showlegend: false,
        meta: { group: g.name, kind: "band" },
      });
      const band = state.bandKind === "minmax" ? "min–max" : "± std";
      traces.push({
        type: "scatter",
        mode: "lines",
        x: xs,
        y: mean,
        customdata: counts,
        name: g.name,
        legendgroup: g.name,
        line: { color: g.color, width: 2 },
        hovertemplate: `<b>${escapeHtml(g.name)}</b> (mean of %{customdata} runs, band ${band})<br>${D.labels[axis]}: %{x:.4~g}<br>${escapeHtml(metric.label)}: %{y:.4~g}<extra></extra>`,
        meta: { group: g.name, kind: "mean" },
      });
    }
    return traces.concat(hiddenGroups());
  }

  // Deselected groups keep a greyed legend entry, so a click on it brings them back.
  function hiddenGroups() {
    return groups
      .filter((g) => !g.runs.some((r) => state.runs.has(r)))
      .map((g) => ({
        type: "scatter", mode: "lines", x: [null], y: [null], name: g.name, legendgroup: g.name, visible: "legendonly",
        line: { color: g.color }, meta: { group: g.name, kind: "hidden" },
      }));
  }

  // ---- plots -----------------------------------------------------------------------------
  const plotConfig = { displaylogo: false, responsive: true };
  function layout(xTitle, yTitle, extra) {
    return Object.assign(
      {
        margin: { l: 58, r: 12, t: 8, b: 42 },
        xaxis: { title: { text: xTitle }, type: state.logX ? "log" : "linear", zeroline: false },
        yaxis: { title: { text: yTitle }, zeroline: false },
        legend: { orientation: "h", y: -0.22, font: { size: 11 } },
        hovermode: "closest",
        showlegend: true,
        uirevision: "keep",
      },
      extra || {}
    );
  }
  function attach(div) {
    if (div.dataset.bound) return;
    div.dataset.bound = "1";
    // A legend entry is a group: clicking it toggles the group everywhere on the page.
    div.on("plotly_legendclick", (ev) => {
      const name = ev.data[ev.curveNumber].legendgroup;
      const gi = groups.findIndex((g) => g.name === name);
      if (gi >= 0) setGroup(gi, !groups[gi].runs.some((r) => state.runs.has(r)));
      return false;
    });
    div.on("plotly_legenddoubleclick", () => false);
    // Clicking a run highlights it in every plot; clicking it again clears the highlight.
    div.on("plotly_click", (ev) => {
      const point = ev.points[0];
      const meta = point.data.meta || {};
      let r = null;
      if (meta.kind === "run" || meta.kind === "plane") r = runs.findIndex((x) => x.id === meta.run);
      else if (meta.kind === "scatter") r = point.customdata;
      if (r === null || r < 0) return;
      state.highlight = state.highlight === r ? null : r;
      render();
    });
  }
  function drawPanels() {
    const box = document.getElementById("panels");
    const wanted = state.metrics;
    for (const panel of Array.from(box.children)) {
      if (!wanted.includes(panel.dataset.key)) {
        stale.delete(panel.querySelector(".plot"));
        Plotly.purge(panel.querySelector(".plot"));
        panel.remove();
      }
    }
    wanted.forEach((key, i) => {
      let panel = box.querySelector(`.panel[data-key="${CSS.escape(key)}"]`);
      if (!panel) {
        const m = metricByKey[key];
        panel = el("div", { class: "panel", "data-key": key },
          el("h3", { text: `${m.label}`, title: `${m.key}: ${m.description}` }),
          el("div", { class: "plot" }));
      }
      if (box.children[i] !== panel) box.insertBefore(panel, box.children[i] || null);
    });
  }
  function drawMetric(div) {
    const metric = metricByKey[div.parentNode.dataset.key];
    const axis = axisOf(metric);
    const traces = state.band ? bandTraces(metric, axis) : runTraces(metric, axis);
    Plotly.react(div, traces, layout(D.labels[axis], metric.label), plotConfig);
    attach(div);
  }
  function drawPlane(div) {
    const traces = [];
    const shown = new Set();
    let scale = true;
    const paths = planeData().filter((p) => state.runs.has(p.r));
    const quarter = (perLine(paths.length, PLANE_POINTS) - 2) >> 2;
    for (const p of paths) {
      const a = minmaxIdx(p.h, quarter), b = minmaxIdx(p.i, quarter);
      const idx = a && b ? Int32Array.from(new Set([...a, ...b])).sort() : null;
      const run = runs[p.r];
      const g = groups[run.g];
      const hi = state.highlight === p.r;
      traces.push({
        type: "scatter",
        mode: "lines+markers",
        x: pick(p.h, idx),
        y: pick(p.i, idx),
        name: g.name,
        legendgroup: g.name,
        showlegend: !shown.has(run.g),
        opacity: state.highlight !== null && !hi ? 0.25 : 0.9,
        line: { color: g.color, width: hi ? 3 : 1 },
        marker: {
          size: 4, color: Array.from(pick(p.p, idx)), colorscale: "Viridis", cmin: 0, cmax: 1, showscale: scale,
          colorbar: scale ? { title: { text: "progress" }, thickness: 10, len: 0.6 } : undefined,
        },
        hovertemplate: `${runHover[p.r]}<br>${D.labels[D.plane_x]}: %{x:.4~g}<br>${D.labels[D.plane_y]}: %{y:.4~g}<br>progress: %{marker.color:.2f}<extra></extra>`,
        meta: { run: run.id, group: g.name, kind: "plane" },
      });
      shown.add(run.g);
      scale = false;
    }
    traces.push(...hiddenGroups());
    Plotly.react(div, traces, layout(D.labels[D.plane_x], D.labels[D.plane_y]), plotConfig);
    attach(div);
  }
  function drawScatter(div) {
    if (!state.acc || !state.eq) return;
    const traces = groups.map((g) => {
      const members = g.runs.filter((r) => state.runs.has(r) && runs[r].eq[state.eq] !== null && runs[r].eq[state.eq] !== undefined && runs[r].final[state.acc] !== null);
      return {
        type: "scatter",
        mode: "markers",
        x: members.map((r) => runs[r].eq[state.eq]),
        y: members.map((r) => runs[r].final[state.acc]),
        customdata: members,
        text: members.map((r) => runHover[r]),
        name: g.name,
        legendgroup: g.name,
        marker: {
          color: g.color, size: members.map((r) => (r === state.highlight ? 15 : 9)),
          line: { color: "#fff", width: 1 },
        },
        hovertemplate: `%{text}<br>${escapeHtml(D.labels[state.eq])} (equilibrium): %{x:.4~g}<br>${escapeHtml(D.labels[state.acc] || state.acc)}: %{y:.4~g}<extra></extra>`,
        meta: { group: g.name, kind: "scatter" },
      };
    }).filter((t) => t.x.length).concat(hiddenGroups());
    const xTitle = `${D.labels[state.eq]}, mean over the last ${Math.round(100 * D.equilibrium.window)}% of logged points`;
    Plotly.react(div, traces, Object.assign(layout(xTitle, D.labels[state.acc] || state.acc), { xaxis: { title: { text: xTitle }, zeroline: false } }), plotConfig);
    attach(div);
  }
  function syncControls() {
    groups.forEach((g, gi) => {
      const box = document.querySelector(`input.group-toggle[data-group="${gi}"]`);
      const on = g.runs.filter((r) => state.runs.has(r)).length;
      box.checked = on > 0;
      box.indeterminate = on > 0 && on < g.runs.length;
    });
    for (const box of document.querySelectorAll("input.run-toggle")) box.checked = state.runs.has(+box.dataset.run);
  }
  // Only plots on screen (or close to it) are drawn; the others are marked stale and drawn when
  // they scroll into view, so a click costs the visible plots only.
  const stale = new Set();
  function draw(div) {
    stale.delete(div);
    if (div.id === "plane") drawPlane(div);
    else if (div.id === "scatter") drawScatter(div);
    else drawMetric(div);
  }
  function onScreen(div) {
    const box = document.getElementById("main").getBoundingClientRect();
    const r = div.getBoundingClientRect();
    return r.bottom > box.top - 50 && r.top < box.bottom + 50;
  }
  function drawVisible() {
    for (const div of Array.from(stale)) if (onScreen(div)) draw(div);
  }
  function flush() {
    for (const div of Array.from(stale)) draw(div);
  }
  function render() {
    syncControls();
    drawPanels();
    for (const div of document.querySelectorAll("#main .plot")) stale.add(div);
    drawVisible();
    const shown = state.runs.size;
    const lines = perLine(shown, PLOT_POINTS);
    document.getElementById("draw-note").textContent =
      `${shown} of ${runs.length} runs shown; ` +
      (lines < D.downsample.max_points ? `lines thinned to at most ${lines} points on screen.` : "lines drawn with every embedded point.");
    document.body.dataset.renders = String(+(document.body.dataset.renders || 0) + 1);
  }
  function setGroup(gi, on) {
    for (const r of groups[gi].runs) on ? state.runs.add(r) : state.runs.delete(r);
    render();
  }

  // ---- controls --------------------------------------------------------------------------
  function buildSide() {
    const side = document.getElementById("side");
    const ds = D.downsample;
    const factor = ds.drawn ? ds.logged / ds.drawn : 1;
    side.append(
      el("h1", { text: D.title }),
      el("div", { class: "note", text: `${runs.length} runs in ${groups.length} groups (by ${D.by})` + (D.source ? `; source: ${D.source}` : "") }),
      el("div", {
        class: "note",
        id: "downsample-note",
        text: factor > 1.0001
          ? `Downsampled ${factor.toFixed(1)}×: each line keeps the min and max of each bucket of logged points (at most ${ds.max_points} points); ${ds.drawn.toLocaleString()} of ${ds.logged.toLocaleString()} logged points drawn.`
          : `Every logged point is drawn (${ds.logged.toLocaleString()} points).`,
      }),
      el("div", { class: "note", id: "draw-note" })
    );
    side.append(el("h2", { text: "Runs" }),
      el("div", { class: "bar" },
        el("button", { id: "runs-all", text: "all", onclick: () => { runs.forEach((_, i) => state.runs.add(i)); render(); } }),
        el("button", { id: "runs-none", text: "none", onclick: () => { state.runs.clear(); render(); } })));
    groups.forEach((g, gi) => {
      const runList = el("div", { class: "runs" });
      for (const r of g.runs) {
        runList.append(el("div", { class: "row" },
          el("input", {
            type: "checkbox", class: "run-toggle", id: `run-${r}`, "data-run": r, checked: true,
            onchange: (e) => { e.target.checked ? state.runs.add(r) : state.runs.delete(r); render(); },
          }),
          el("label", { for: `run-${r}`, text: runs[r].id, title: runHover[r].replace(/<br>/g, "\n").replace(/<[^>]+>/g, "") })));
      }
      side.append(el("details", { class: "group" },
        el("summary", {},
          el("span", { class: "row" },
            el("input", {
              type: "checkbox", class: "group-toggle", id: `group-${gi}`, "data-group": gi, checked: true,
              onclick: (e) => e.stopPropagation(),
              onchange: (e) => setGroup(gi, e.target.checked),
            }),
            el("span", { class: "swatch", style: `background:${g.color}` }),
            el("label", { for: `group-${gi}`, text: g.name, onclick: (e) => e.stopPropagation() }),
            el("span", { class: "count", text: `${g.runs.length} ▸` }))),
        runList));
    });

    side.append(el("h2", { text: "Axes and lines" }));
    const xSelect = el("select", { id: "x-axis", onchange: (e) => { state.x = e.target.value; render(); } },
      el("option", { value: "auto", text: "each key's own (step; epoch for eval/)" }),
      el("option", { value: "step", text: "step" }),
      el("option", { value: "epoch", text: "epoch" }),
      el("option", { value: "progress", text: "progress" }));
    const smoothLabel = el("span", { id: "smooth-value", text: "off" });
    side.append(
      el("div", { class: "row" }, el("label", { for: "x-axis", text: "x axis" }), xSelect),
      el("div", { class: "row" },
        el("input", { type: "checkbox", id: "log-x", onchange: (e) => { state.logX = e.target.checked; render(); } }),
        el("label", { for: "log-x", text: "log x" })),
      el("div", { class: "row" },
        el("label", { for: "smooth", text: "smoothing" }),
        el("input", {
          type: "range", id: "smooth", min: 0, max: 20, step: 1, value: 0,
          oninput: (e) => {
            state.smooth = +e.target.value / 100;
            smoothLabel.textContent = state.smooth ? `${e.target.value}% of each run` : "off";
            render();
          },
        }),
        smoothLabel),
      el("div", { class: "row" },
        el("input", { type: "checkbox", id: "band", onchange: (e) => { state.band = e.target.checked; render(); } }),
        el("label", { for: "band", text: "mean and band per group" }),
        el("select", { id: "band-kind", onchange: (e) => { state.bandKind = e.target.value; render(); } },
          el("option", { value: "std", text: "± std" }),
          el("option", { value: "minmax", text: "min–max" })))
    );

    side.append(el("h2", { text: "Metrics" }),
      el("div", { class: "bar" },
        el("button", { id: "metrics-none", text: "none", onclick: () => { state.metrics = []; for (const b of document.querySelectorAll("input.metric-toggle")) b.checked = false; render(); } })));
    for (const section of D.sections) {
      side.append(el("div", { class: "metrics-section", text: section.title }));
      for (const key of section.keys) {
        const m = metricByKey[key];
        const id = `metric-${D.metrics.indexOf(m)}`;
        side.append(el("div", { class: "row", title: `${key}: ${m.description}` },
          el("input", {
            type: "checkbox", class: "metric-toggle", id, value: key, checked: state.metrics.includes(key),
            onchange: (e) => {
              state.metrics = e.target.checked ? D.metrics.map((x) => x.key).filter((k) => k === key || state.metrics.includes(k)) : state.metrics.filter((k) => k !== key);
              render();
            },
          }),
          el("label", { for: id, text: m.label })));
      }
    }
  }
  function buildMain() {
    const main = document.getElementById("main");
    main.append(el("div", { id: "panels" }));
    const linked = el("div", { id: "linked" });
    if (D.plane.length) {
      linked.append(el("div", { class: "panel" },
        el("h3", { text: `Information plane: ${D.labels[D.plane_y]} against ${D.labels[D.plane_x]}`, title: "one path per run; markers coloured by training progress" }),
        el("div", { class: "plot", id: "plane" })));
    }
    if (D.accuracy.keys.length && D.equilibrium.keys.length) {
      const opts = (list, chosen) => list.map((k) => el("option", { value: k, text: D.labels[k] || k, selected: k === chosen }));
      linked.append(el("div", { class: "panel" },
        el("div", { class: "bar" },
          el("h3", { text: "Equilibrium against accuracy" }),
          el("select", { id: "eq-key", onchange: (e) => { state.eq = e.target.value; render(); } }, ...opts(D.equilibrium.keys, state.eq)),
          el("span", { text: "against" }),
          el("select", { id: "acc-key", onchange: (e) => { state.acc = e.target.value; render(); } }, ...opts(D.accuracy.keys, state.acc))),
        el("div", { class: "plot", id: "scatter" })));
    }
    main.append(linked);
  }

  document.body.append(el("div", { id: "side" }), el("div", { id: "main" }));
  buildSide();
  buildMain();
  render();
  let pending = false;
  const later = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawVisible(); });
  };
  document.getElementById("main").addEventListener("scroll", later);
  window.addEventListener("resize", later);
  window.adadim = { data: D, state, render, flush };
  document.body.dataset.ready = "1";
})();
