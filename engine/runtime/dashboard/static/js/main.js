// The dashboard's entry point: the WebSocket (reconnecting, a snapshot first each time), the
// store, and the panels, each an independent module redrawn when its families change.

import {Store, PROTOCOL, parse} from './store.js';
import {h, age, time, derived} from './dom.js';
import * as alerts from './panels/alerts.js';
import * as exposures from './panels/exposures.js';
import * as varPanel from './panels/var.js';
import * as stress from './panels/stress.js';
import * as attribution from './panels/attribution.js';
import * as margin from './panels/margin.js';
import * as hedges from './panels/hedges.js';
import * as liquidity from './panels/liquidity.js';
import * as crosshedge from './panels/crosshedge.js';
import * as skew from './panels/skew.js';
import * as positioning from './panels/positioning.js';
import * as forwards from './panels/forwards.js';
import * as strategies from './panels/strategies.js';
import * as health from './panels/health.js';

const PANELS = [
  alerts, exposures, varPanel, attribution, stress, margin, hedges, liquidity, crosshedge, skew,
  forwards, positioning,
  strategies, health,
];
const store = new Store();
const dirty = new Set();
let frame = 0;
let backoffS = 0.25;
let lastMessage = 0;

const sections = new Map(); // section -> panel
for (const p of PANELS) {
  const section = document.getElementById(`panel-${p.id}`);
  sections.set(section, p);
  p.init(section.querySelector('.body'), store);
}

// Panels on screen (or nearly: 200 px) are redrawn at the next frame. The others, whose layout
// app.css skips, are redrawn one at a time when the page is idle, each at most every
// OFFSCREEN_MS, and at once when they scroll in: what nobody looks at does not hold back what
// somebody does (a large book's off-screen panel takes hundreds of ms to draw).
const OFFSCREEN_MS = 2000;
const visible = new Set();
const drawnAt = new Map(); // panel -> performance.now() of its last redraw
let idle = 0;
const observer = new IntersectionObserver((seen) => {
  for (const e of seen) {
    const p = sections.get(e.target);
    if (e.isIntersecting) visible.add(p);
    else visible.delete(p);
  }
  pending();
}, {rootMargin: '200px'});
for (const section of sections.keys()) observer.observe(section);

// A message changed these families (or the connection its state): redraw what shows them, and
// the header and the ages at the next frame.
function schedule(changed) {
  for (const p of PANELS) {
    if (changed.has('all') || p.families.some((f) => changed.has(f))) dirty.add(p);
  }
  if (!frame) frame = requestAnimationFrame(flush);
  pending();
}

// What is left dirty: the visible panels at the next frame, the first off-screen panel due
// when the page is next idle.
const dueAt = (p) => (drawnAt.get(p) ?? -Infinity) + OFFSCREEN_MS;

function pending() {
  if (!frame && [...dirty].some((p) => visible.has(p))) frame = requestAnimationFrame(flush);
  const hidden = [...dirty].filter((p) => !visible.has(p));
  if (idle || !hidden.length) return;
  const wait = Math.max(Math.min(...hidden.map(dueAt)) - performance.now(), 0);
  idle = setTimeout(() => requestIdleCallback(flushIdle), wait);
}

function flushIdle() {
  const now = performance.now();
  const p = PANELS.find((q) => dirty.has(q) && !visible.has(q) && dueAt(q) <= now);
  idle = 0;
  if (p) {
    draw(p);
    drawn();
  }
  pending();
}

function draw(p) {
  dirty.delete(p);
  drawnAt.set(p, performance.now());
  try {
    p.render(store);
  } catch (err) {
    console.error(`panel ${p.id}:`, err);
  }
}

function drawn() {
  ages();
  status();
  document.body.dataset.frames = String(Number(document.body.dataset.frames ?? 0) + 1);
}

// Redraw the visible panels whose families changed, in page order, for at most BUDGET_MS a
// frame (one panel at least): a heavy redraw of one does not hold back the others for long.
const BUDGET_MS = 12;

function flush() {
  frame = 0;
  const start = performance.now();
  for (const p of PANELS) {
    if (!dirty.has(p) || !visible.has(p)) continue;
    if (performance.now() - start > BUDGET_MS) break;
    draw(p);
  }
  drawn();
  pending();
}

// The age of every card's and row's figures, and the stale mark (docs/dashboard.md).
function ages() {
  for (const el of document.querySelectorAll('[data-ts-ns]')) {
    const s = store.ageS(el.dataset.tsNs);
    const stale = !store.connected || (s !== null && s > store.staleLimitS(el.dataset.family));
    const target = el.matches('tr') ? el : (el.closest('.card') ?? el);
    target.classList.toggle('stale', stale);
    const span = el.querySelector(':scope > .age');
    if (span) span.textContent = age(s);
  }
}

function status() {
  const el = document.getElementById('status');
  const hh = store.health;
  const parts = [];
  if (!store.connected) {
    parts.push(h('span', {class: 'badge crit'}, 'DISCONNECTED'),
      ` reconnecting; figures as of ${lastMessage ? new Date(lastMessage).toISOString().slice(11, 19) + ' UTC' : '-'}`);
  } else if (hh) {
    parts.push(h('span', {class: `badge ${hh.ready ? 'ok' : 'warn'}`}, hh.ready ? 'LIVE' : 'NOT READY'),
      ' valued ', derived('health(valuation_ts_ns)', hh.valuation_ts_ns, time),
      ' · daemon clock ', derived('health(now_ns)', hh.now_ns, time));
  }
  el.replaceChildren(...parts);
  document.body.classList.toggle('offline', !store.connected);
}

// Refused before it opened: if the page itself now needs the token (a new session), show the
// login form.
async function signedOut() {
  try {
    const r = await fetch('/', {method: 'HEAD', cache: 'no-store'});
    if (r.status === 401) location.reload();
  } catch {
    // the daemon is away: keep reconnecting
  }
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  let opened = false;
  ws.onopen = () => { opened = true; };
  ws.onmessage = (ev) => {
    const msg = parse(ev.data);
    if (msg.type === 'snapshot' && msg.protocol !== PROTOCOL) {
      location.reload(); // a daemon of another version: load its page
      return;
    }
    lastMessage = Date.now();
    backoffS = 0.25;
    schedule(store.apply(msg));
  };
  ws.onclose = () => {
    if (!opened) signedOut();
    store.connected = false;
    schedule(new Set());
    const delay = backoffS * (0.5 + Math.random());
    backoffS = Math.min(backoffS * 2, 5);
    setTimeout(connect, delay * 1000);
  };
}

connect();
