// Building the page: elements, figures with their data attributes, number formats.
//
// A figure is an element with data-key (the Redis hash, with the prefix), data-field (the hash
// field), data-path (its path in the payload: dot-separated, list positions as numbers) and
// data-value: the number as published (full precision), empty for null (shown "-"), the exact
// JSON text of a string or a boolean. A figure the page derives carries data-derived naming its
// inputs instead of data-key: op(key|field|path;key|field|path...) (docs/dashboard.md).

import {isBigInt} from './store.js';

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// The value at a dot-separated path of a payload (undefined where there is none).
export function at(payload, path) {
  let v = payload;
  for (const part of path.split('.')) {
    if (v === null || v === undefined) return undefined;
    v = v[part];
  }
  return v;
}

// Write a value into a figure: data-value, its text, its sign's class; nothing when both are
// as they were (a payload published again, a figure that did not move).
function setValue(el, value, fmt) {
  let shown;
  let text;
  let sign = '';
  if (value === null || value === undefined) {
    if (el.sign === 'null') return;
    shown = '';
    text = '-';
    sign = 'null';
  } else if (typeof value === 'number' || isBigInt(value)) {
    shown = String(value);
    if (el.dataset.value === shown) return;
    text = fmt(value);
    const n = Number(value);
    sign = n < 0 ? 'neg' : n > 0 ? 'pos' : '';
    if (fmt === compact) el.title = usd(value);
  } else {
    shown = JSON.stringify(value);
    if (el.dataset.value === shown) return;
    text = fmt === num ? String(value) : fmt(value);
  }
  el.dataset.value = shown;
  el.textContent = text;
  if (el.sign !== sign) {
    if (el.sign) el.classList.remove(el.sign);
    if (sign) el.classList.add(sign);
    el.sign = sign; // the class it has now
  }
}

// Show another value in a figure made by fig() (in place: no new element).
export function refresh(el, payload, fmt = num) {
  setValue(el, at(payload, el.dataset.path), fmt);
}

// A figure read from a payload: payload[path] in hash `key`, field `field`.
export function fig(key, field, payload, path, fmt = num, opts = {}) {
  const el = h(opts.tag ?? 'span', {class: `fig ${opts.class ?? ''}`.trim(), title: opts.title});
  el.dataset.key = key;
  el.dataset.field = field;
  el.dataset.path = path;
  el.fmt = fmt; // for refreshAll
  setValue(el, at(payload, path), fmt);
  return el;
}

// Show a newer payload in every figure under `root` (in place); the stamp's time too.
export function refreshAll(root, payload) {
  for (const el of root.querySelectorAll('[data-key]')) refresh(el, payload, el.fmt ?? num);
  const ts = String(payload.ts_ns);
  if (root.dataset.tsNs !== undefined) root.dataset.tsNs = ts;
  for (const el of root.querySelectorAll('[data-ts-ns]')) el.dataset.tsNs = ts;
}

// A figure the page derives: `inputs` names what it is made of.
export function derived(inputs, value, fmt = num, opts = {}) {
  const el = h(opts.tag ?? 'span', {class: `fig derived ${opts.class ?? ''}`.trim(), title: opts.title});
  el.dataset.derived = inputs;
  setValue(el, value, fmt);
  return el;
}

export const ref = (key, field, path) => `${key}|${field}|${path}`;

// A sum of figures (null when any is null, as the payload's own sums would be).
export function sum(refs, values, fmt = num, opts = {}) {
  const total = values.some((v) => v === null || v === undefined)
    ? null
    : values.reduce((a, b) => a + b, 0);
  return derived(`sum(${refs.join(';')})`, total, fmt, opts);
}

// ------------------------------------------------------------------ formats

const fixed = (d) => new Intl.NumberFormat('en-US', {minimumFractionDigits: d, maximumFractionDigits: d});
const F0 = fixed(0);
const F1 = fixed(1);
const F2 = fixed(2);
const F4 = fixed(4);

// Money and large figures: whole units from 1,000 up, cents below.
export function usd(x) {
  const n = Number(x);
  return Math.abs(n) >= 1000 ? F0.format(n) : F2.format(n);
}

// Any figure: readable digits for its size.
export function num(x) {
  const n = Number(x);
  const a = Math.abs(n);
  if (Number.isInteger(n) && a < 1e15) return F0.format(n);
  if (a >= 10000) return F0.format(n);
  if (a >= 100) return F2.format(n);
  if (a >= 0.01) return F4.format(n);
  return n.toExponential(3);
}

export const int = (x) => F0.format(Number(x));

// Large figures in a small space (heatmap cells, narrow tables): 188.3k, -1.25M; the exact
// figure is in the element's title and data-value.
export function compact(x) {
  const n = Number(x);
  const a = Math.abs(n);
  if (a >= 1e6) return `${(n / 1e6).toFixed(a >= 1e8 ? 0 : a >= 1e7 ? 1 : 2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(a >= 1e5 ? 0 : 1)}k`;
  return a >= 1 || a === 0 ? F0.format(n) : num(n);
}

// Axis labels: whole numbers from 100 up.
export const axis = (x) => (Math.abs(Number(x)) >= 100 ? F0.format(Number(x)) : num(x));
export const pct = (x) => `${F1.format(Number(x) * 100)}%`; // a fraction, as percent
export const volPct = (x) => `${F2.format(Number(x) * 100)}`; // a decimal vol, in vol points
export const shock = (x) => `${Number(x) > 0 ? '+' : ''}${F0.format(Number(x) * 100)}%`;
export const text = (x) => String(x);
export const yesNo = (x) => (x ? 'yes' : 'no');

export function time(ns) {
  if (ns === null || ns === undefined) return '-';
  const ms = Number(BigInt(ns) / 1000000n);
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

// The time of day (UTC) of a ns timestamp.
export function clock(ns) {
  return time(ns).slice(11, 19);
}

export function age(s) {
  if (s === null) return '-';
  if (s < 60) return `${F1.format(Math.max(s, 0))} s`;
  if (s < 3600) return `${F0.format(s / 60)} min`;
  return `${F1.format(s / 3600)} h`;
}

// The line under a card's title: when its figures were valued and how old they are. Its
// element carries data-ts-ns and data-family: main.js updates the age and the stale mark.
export function stamp(key, field, family, payload) {
  return h('div', {class: 'stamp muted', dataset: {tsNs: String(payload.ts_ns), family}},
    'valued ', fig(key, field, payload, 'valuation_ts_ns', time, {class: 'when'}),
    ' · age ', h('span', {class: 'age'}, '-'),
    h('span', {class: 'stale-badge'}, 'STALE'));
}

// A details element whose content is built only while it is open (a large table would
// otherwise cost every redraw) and that stays open across redraws: `open` holds the keys of
// those opened; `redraw` runs on the user's toggle (a details made open fires toggle too).
export function lazyDetails(open, key, summary, content, redraw) {
  const details = h('details', {class: 'table-of-chart', open: open.has(key),
    ontoggle: (e) => {
      if (e.target.open === open.has(key)) return;
      if (e.target.open) open.add(key); else open.delete(key);
      redraw();
    }},
  h('summary', {}, summary));
  if (open.has(key)) details.append(...[content()].flat());
  return details;
}

// A column head with its unit.
export function head(name, unit, opts = {}) {
  const title = opts.title ? `${name}: ${opts.title}` : unit ? `${name}: ${unit}` : null;
  return h('th', {scope: 'col', class: opts.class, title},
    h('span', {class: 'name'}, name), unit ? h('span', {class: 'unit'}, unit) : null);
}
