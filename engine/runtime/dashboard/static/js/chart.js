// Line and point charts on the vendored uPlot (static/vendor, MIT): one chart per element,
// resized with it, redrawn with setData. Each chart is drawn from the same numbers as the
// accessible table its panel builds beside it.

import {h} from './dom.js';

const uPlot = globalThis.uPlot;

const AXIS = {stroke: '#8a96a6', grid: {stroke: '#243042', width: 1}, ticks: {stroke: '#243042'}};
export const COLOURS = ['#4da3ff', '#f5a524', '#4cc38a', '#c678dd', '#ff6b6b', '#56b6c2', '#e5c07b'];

export class Chart {
  // series: [{label, colour, points: bool (markers only), bars: bool, dash: bool}];
  // x: {time: bool, label};
  // y: {label, fmt}.
  constructor(el, {series, x = {}, y = {}, height = 220}) {
    this.el = el;
    this.series = series;
    this.x = x;
    this.y = y;
    this.height = height;
    this.plot = null;
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({width: this.width(), height: this.height});
    });
    this.resize.observe(el);
  }

  width() {
    return Math.max(this.el.clientWidth, 200);
  }

  options() {
    const fmt = this.y.fmt ?? ((v) => v);
    return {
      width: this.width(),
      height: this.height,
      legend: {show: true, live: false},
      cursor: {drag: {x: false, y: false}},
      scales: {
        x: {time: Boolean(this.x.time)},
        // a flat series (a flat smile) keeps a readable range: at least 1% of its level
        y: {range: (u, min, max) => {
          const pad = Math.max((max - min) * 0.08, Math.abs(max) * 0.005, 1e-9);
          return [min - pad, max + pad];
        }},
      },
      axes: [
        {...AXIS, label: this.x.label, labelSize: 18, values: this.x.fmt ? (u, vs) => vs.map(this.x.fmt) : undefined},
        {...AXIS, label: this.y.label, labelSize: 18, size: 64, values: (u, vs) => vs.map(fmt)},
      ],
      series: [
        {label: this.x.label ?? 'x'},
        ...this.series.map((s, i) => ({
          label: s.label,
          stroke: s.colour ?? COLOURS[i % COLOURS.length],
          fill: s.bars ? `${s.colour ?? COLOURS[i % COLOURS.length]}99` : undefined,
          width: s.points ? 0 : s.bars ? 1 : 2,
          dash: s.dash ? [6, 4] : undefined,
          spanGaps: true,
          // bars side by side: each series a third of the slot, the first left of the value
          paths: s.points ? () => null
            : s.bars ? uPlot.paths.bars({size: [0.35, 24], align: i % 2 ? 1 : -1}) : undefined,
          points: s.points ? {show: true, size: 7, fill: s.colour ?? COLOURS[i % COLOURS.length]} : {show: false},
        })),
      ],
    };
  }

  // New series (another set of expiries, say): the plot is made again at the next set().
  setSeries(series) {
    const labels = (ss) => ss.map((s) => `${s.label}/${Boolean(s.points)}`).join('|');
    if (labels(series) === labels(this.series)) return;
    this.series = series;
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }

  // data: [xs, ys1, ys2, ...] (aligned; null for a gap).
  set(data) {
    if (!this.plot) {
      this.plot = new uPlot(this.options(), data, this.el);
    } else {
      this.plot.setData(data);
    }
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

// Align series of their own xs on one x axis: [[xs, ys], ...] -> [xs, ys1, ys2, ...].
export function join(tables) {
  return uPlot.join(tables);
}

// A panel's charts, kept from one redraw to the next (each built once, then given new data),
// and the data tables beneath them that the reader has opened.
export class Charts {
  constructor() {
    this.charts = new Map();
    this.open = new Set();
  }

  // The chart called `name`, made with `opts` the first time.
  get(name, opts) {
    let c = this.charts.get(name);
    if (!c) {
      c = new Chart(h('div', {class: 'chart', role: 'img', 'aria-label': opts.label}), opts);
      this.charts.set(name, c);
    }
    return c;
  }

  // The table of chart `name`'s data under `summary`, open if the reader left it open.
  table(name, summary, build) {
    const open = this.open;
    const d = h('details', {class: 'table-of-chart', open: open.has(name),
      ontoggle: (e) => { if (e.target.open) open.add(name); else open.delete(name); }},
    h('summary', {}, summary));
    d.append(build()); // always built: the figures are the chart's data, readable and testable
    return d;
  }

  clear() {
    for (const c of this.charts.values()) c.destroy();
    this.charts.clear();
  }
}
