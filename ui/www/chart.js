// chart: spend per day as a bar chart, drawn by uPlot (vendor/, copied
// from npm by the build; README "Admin UI" says why uPlot).  The exact
// amounts are never the chart's: it draws approximations, and the figure
// carries the exact series in data-series and a table beside it, which
// is what a screen reader and the tests read.  Without the library (a
// build without `npm ci` in ui/) the figure says so and the table stays.

import { h } from "./dom.js";
import { approx, usd } from "./money.js";

let loading = null;

export function loadLibrary() {
  if (!loading) {
    loading = import("./vendor/uPlot.esm.js")
      .then((m) => (typeof m.default === "function" ? m.default : null))
      .catch(() => null);
  }
  return loading;
}

// The days from start to end ("YYYY-MM-DD", UTC), inclusive.
export function daysBetween(start, end) {
  const out = [];
  const d = new Date(start + "T00:00:00Z");
  const last = new Date(end + "T00:00:00Z");
  while (d <= last) {
    out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

// The last n UTC days, today included: {start, end}.
export function lastDays(n) {
  const d = new Date();
  const end = isoDay(d);
  d.setUTCDate(d.getUTCDate() - (n - 1));
  return { start: isoDay(d), end };
}

// A <figure> with the chart of points [[day, exact spend]] (every day of
// the range, zeros included); label names it for assistive technology.
export async function spendChart(points, label) {
  const total = points.filter(([, v]) => approx(v) > 0).length;
  const fig = h("figure", {
    class: "chart",
    role: "group",
    "aria-label": label,
    dataset: { series: JSON.stringify(points) },
  });
  const caption = h("figcaption", null, label + " (" + total + " day" + (total === 1 ? "" : "s") + " with spend)");
  const plot = h("div", { class: "plot", role: "img", "aria-label": label + ": the table below lists every day" });
  fig.append(caption, plot);
  const uPlot = await loadLibrary();
  if (!uPlot) {
    fig.dataset.library = "missing";
    plot.replaceWith(h("p", { class: "note", role: "note" },
      "Chart library missing: this UI was built without uPlot (run npm ci in ui/, then make). " +
      "The table lists the same amounts."));
    return fig;
  }
  fig.dataset.library = "uplot";
  const xs = points.map(([d]) => Date.parse(d + "T00:00:00Z") / 1000);
  const ys = points.map(([, v]) => approx(v));
  const opts = {
    width: 720,
    height: 260,
    // Half a day beside the first and the last bar, so that both show whole.
    scales: { x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { values: (u, vals) => vals.map((v) => new Date(v * 1000).toISOString().slice(5, 10)) },
      {
        values: (u, vals) => vals.map((v) => "$" + v),
        // Wide enough for the longest label (uPlot's default cuts long ones).
        size: (u, values) => 24 + 7 * Math.max(4, ...(values || []).map((v) => String(v).length)),
      },
    ],
    series: [
      { value: (u, v) => (v == null ? "—" : new Date(v * 1000).toISOString().slice(0, 10)) },
      {
        label: "Spend",
        stroke: "#1f5fbf",
        fill: "rgba(31, 95, 191, 0.35)",
        paths: uPlot.paths.bars({ size: [0.7, 40] }),
        points: { show: false },
        // The legend shows the exact amount of the day under the cursor.
        value: (u, v, si, idx) => (idx == null ? "—" : usd(points[idx][1])),
      },
    ],
    legend: { show: true },
    cursor: { points: { show: false } },
  };
  const chart = new uPlot(opts, [xs, ys], plot);
  let width = 0;
  const fit = () => {
    const w = Math.max(320, Math.min(960, (fig.clientWidth || 736) - 16));
    if (w !== width) {
      width = w;
      chart.setSize({ width: w, height: 260 });
    }
  };
  requestAnimationFrame(fit);
  new ResizeObserver(fit).observe(fig);
  return fig;
}
