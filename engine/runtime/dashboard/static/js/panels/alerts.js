// Alerts: the active ones (risk:alerts:active, most severe first) and the last transitions,
// newest first (the alerts stream, data-derived).

import {h, fig, derived, num, text, time, clock} from '../dom.js';

export const id = 'alerts';
export const families = ['alerts'];

const RANK = {critical: 0, warning: 1, info: 2};
let root;

export function init(el) {
  root = el;
}

function scope(a) {
  return [a.book, a.underlying, a.expiry, a.strategy, a.feed].filter((x) => x).join(' / ') || a.scope;
}

function active(store) {
  const key = store.activeKey;
  const list = store.fields(key).sort(([, a], [, b]) => RANK[a.severity] - RANK[b.severity]);
  if (!list.length) return h('p', {class: 'ok-note'}, 'no alert active');
  return h('div', {class: 'scroll-x'}, h('table', {class: 'data alerts'},
    h('thead', {}, h('tr', {}, ...['since (UTC)', 'alert', 'value, threshold'].map((n) => h('th', {scope: 'col'}, n)))),
    h('tbody', {}, list.map(([field, a]) => h('tr', {class: `sev-${a.severity}`},
      h('td', {}, fig(key, field, a, 'severity', (s) => s.toUpperCase(), {class: `badge ${a.severity}`}),
        h('div', {}, fig(key, field, a, 'ts_ns', clock, {class: 'small muted', title: time(a.ts_ns)}))),
      // the scope under the alert's name: three columns fit the panel's third of a wide screen
      h('th', {scope: 'row'}, fig(key, field, a, 'alert', text),
        h('div', {class: 'muted small'}, fig(key, field, a, 'metric', text), ' \u00b7 ', scope(a))),
      h('td', {class: 'num'}, fig(key, field, a, 'value', num), ' ', h('span', {class: 'unit'}, a.unit),
        h('div', {class: 'small'}, fig(key, field, a, 'direction', text, {class: 'muted'}), ' ', fig(key, field, a, 'threshold', num))))))));
}

function log(store) {
  const items = store.alertLog.slice().reverse();
  if (!items.length) return h('p', {class: 'muted'}, 'no transition yet');
  const src = (a, path) => `stream(${store.prefix}:alerts:stream|${a.id}|${path})`;
  return h('ol', {class: 'log'}, items.map((a) => h('li', {class: `sev-${a.severity} ${a.state}`},
    derived(src(a, 'ts_ns'), a.ts_ns, clock, {class: 'small muted', title: time(a.ts_ns)}), ' ',
    derived(src(a, 'state'), a.state, (s) => s.toUpperCase(), {class: `badge ${a.state === 'raised' ? a.severity : 'ok'}`}), ' ',
    derived(src(a, 'severity'), a.severity, text, {class: 'muted small'}), ' ',
    h('strong', {}, a.alert), ' ', scope(a), ': ',
    derived(src(a, 'value'), a.value, num), ' ', h('span', {class: 'unit'}, a.unit),
    a.reason ? h('span', {class: 'muted'}, ` (${a.reason})`) : null)));
}

export function render(store) {
  root.replaceChildren(
    h('div', {class: 'card'}, h('h3', {}, 'Active'), active(store)),
    h('div', {class: 'card'}, h('h3', {}, 'Transitions'), h('div', {class: 'scroll short'}, log(store))));
}
