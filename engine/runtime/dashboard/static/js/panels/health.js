// Feeds, Redis and the engine: the daemon's state (the WebSocket's health message, once a
// second). These figures are in no Redis hash: each is data-derived="health(path)".

import {h, derived, head, int, num, text, yesNo, time} from '../dom.js';

export const id = 'health';
export const families = ['health'];

let root;

export function init(el) {
  root = el;
}

const hp = (path, value, fmt = num, opts = {}) => derived(`health(${path})`, value, fmt, opts);

function state(f) {
  if (f.stale) return ['STALE', 'crit'];
  if (f.connected) return ['connected', 'ok'];
  if (f.finished) return ['finished', 'ok'];
  return ['DISCONNECTED', f.required ? 'crit' : 'warn'];
}

export function render(store) {
  const s = store.health;
  if (!s) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'waiting for the daemon'));
    return;
  }
  const feeds = h('table', {class: 'data'},
    h('thead', {}, h('tr', {}, head('feed'), head('state'), head('required'),
      head('received', 'messages', {class: 'num'}), head('events', 'count', {class: 'num'}),
      head('dropped', 'messages', {class: 'num'}))),
    h('tbody', {}, s.feeds.map((f, i) => {
      const [label, sev] = state(f);
      return h('tr', {class: `sev-${sev}`},
        h('th', {scope: 'row'}, hp(`feeds.${i}.name`, f.name, text)),
        h('td', {}, h('span', {class: `badge ${sev}`}, label),
          ' ', hp(`feeds.${i}.connected`, f.connected, (v) => (v ? 'up' : 'down'), {class: 'muted small'})),
        h('td', {}, hp(`feeds.${i}.required`, f.required, yesNo)),
        h('td', {class: 'num'}, hp(`feeds.${i}.received`, f.received, int)),
        h('td', {class: 'num'}, hp(`feeds.${i}.events`, f.events, int)),
        h('td', {class: 'num'}, hp(`feeds.${i}.dropped`, f.dropped, int, {class: f.dropped ? 'warn' : ''})));
    })));
  const r = s.redis;
  const redis = h('dl', {class: 'kv'},
    h('dt', {}, 'Redis'), h('dd', {}, hp('redis.url', r.url, text)),
    h('dt', {}, 'state'), h('dd', {}, h('span', {class: `badge ${r.connected ? 'ok' : 'crit'}`},
      r.connected ? 'connected' : 'NOT REACHABLE'), ' ', hp('redis.connected', r.connected, yesNo, {class: 'muted small'})),
    h('dt', {}, 'published'), h('dd', {}, hp('redis.published', r.published, int), ' payloads'),
    h('dt', {}, 'errors'), h('dd', {}, hp('redis.errors', r.errors, int), ' writes, ', hp('redis.reconnects', r.reconnects, int), ' reconnections'),
    h('dt', {}, 'waiting'), h('dd', {}, hp('redis.pending', r.pending, int), ' keys, ', hp('redis.queued_alerts', r.queued_alerts, int), ' alerts'));
  const engine = h('dl', {class: 'kv'},
    h('dt', {}, 'ready'), h('dd', {}, hp('ready', s.ready, yesNo, {class: s.ready ? 'ok' : 'warn'}),
      ...Object.entries(s.checks).map(([k, v]) => h('span', {class: `check ${v ? 'ok' : 'crit'}`, title: k}, ` ${k.replaceAll('_', ' ')} `, hp(`checks.${k}`, v, yesNo)))),
    h('dt', {}, 'valuation'), h('dd', {}, hp('valuation_ts_ns', s.valuation_ts_ns, time)),
    h('dt', {}, 'cycles'), h('dd', {}, hp('cycles', s.cycles, int), ' in ', hp('uptime_s', s.uptime_s, num), ' s'),
    h('dt', {}, 'positions'), h('dd', {}, hp('positions', s.positions, int), ' lots, ',
      hp('stale_instruments', s.stale_instruments, int, {class: s.stale_instruments ? 'warn' : ''}), ' stale instruments'),
    h('dt', {}, 'alerts'), h('dd', {}, hp('alerts_active', s.alerts_active, int), ' active'));
  root.replaceChildren(h('div', {class: 'cols'},
    h('div', {class: 'card'}, h('h3', {}, 'Feeds'), feeds),
    h('div', {class: 'card'}, h('h3', {}, 'Redis'), redis),
    h('div', {class: 'card'}, h('h3', {}, 'Engine'), engine)));
}
