// Cross hedges and the prospect-theory value per book (risk:crosshedge:snapshot,
// risk:cpt:snapshot): each book's minimum-variance hedge in another instrument with its R² and
// contracts (positive: buy), its delta and gamma weighted by beta to the benchmark (e.g.
// BTC-equivalent), and the CPT value of its scenario P&Ls beside the ES of the same scenarios.

import {h, fig, head, stamp, num, usd, pct, int, text} from '../dom.js';
import {later} from '../store.js';

export const id = 'crosshedge';
export const families = ['crosshedge', 'cpt'];

let root;

export function init(el) {
  root = el;
}

const dash = () => h('span', {class: 'muted'}, '-');

function hedgeCells(key, book, p) {
  if (!p || !p.hedge) return [h('td', {}, dash()), ...[0, 1, 2, 3, 4].map(() => h('td', {class: 'num'}, dash()))];
  const f = (path, fmt = num, opts) => fig(key, book, p, path, fmt, opts);
  return [
    h('td', {}, f('hedge.instrument', text)),
    h('td', {class: 'num strong'}, f('hedge.contracts', num, {class: 'signed'})),
    h('td', {class: 'num'}, f('hedge.ratio')),
    h('td', {class: 'num'}, f('hedge.r2', pct)),
    h('td', {class: 'num'}, f('hedge.book_vol_usd', usd)),
    h('td', {class: 'num'}, f('hedge.residual_vol_usd', usd)),
  ];
}

function betaCells(key, book, p) {
  if (!p) return [h('td', {class: 'num'}, dash()), h('td', {class: 'num'}, dash()), h('td', {class: 'num'}, dash())];
  const f = (path, fmt = num, opts) => fig(key, book, p, path, fmt, opts);
  return [
    h('td', {class: 'num strong'}, f('beta_delta_total')),
    h('td', {class: 'num'}, f('beta_gamma_total')),
    h('td', {class: 'num'}, f('beta_delta_usd', usd)),
  ];
}

function cptCells(key, book, c) {
  if (!c) return [0, 1, 2].map(() => h('td', {class: 'num'}, dash()));
  const f = (path, fmt = num, opts) => fig(key, book, c, path, fmt, opts);
  return [
    h('td', {class: 'num strong'}, f('value', num, {class: 'signed'})),
    h('td', {class: 'num'}, f('certainty_equivalent', usd, {class: 'signed'})),
    h('td', {class: 'num'}, f('es', usd, {class: 'loss'})),
  ];
}

// The CPT parameters and scenarios (the same for every book).
function params(key, book, c) {
  const f = (path, fmt = num) => fig(key, book, c, path, fmt);
  return h('p', {class: 'small muted params'}, 'CPT over ', f('scenarios', int), ' ',
    f('method', (m) => m.replace('_', ' ')), ' scenarios of ', f('horizon_days'), ' day(s); α ', f('params.alpha'),
    ', β ', f('params.beta'), ', λ ', f('params.loss_aversion'), ', γ ', f('params.gamma'), ', δ ', f('params.delta'),
    ' (Tversky and Kahneman 1992); ES at ', f('es_confidence', pct));
}

function status(key, book, p, family) {
  if (!p) return null;
  return h('div', {}, h('span', {class: 'muted'}, `${family}: `), fig(key, book, p, 'status', text, {class: p.status === 'ok' ? 'muted' : 'warn'}));
}

// Per underlying: beta, plain delta and beta-weighted delta and gamma.
function betaRows(key, items) {
  return items.flatMap(([book, p]) => p.underlyings.map((_, i) => {
    const f = (path, fmt = num, opts) => fig(key, book, p, path, fmt, opts);
    return h('tr', {},
      h('th', {scope: 'row'}, f('book', text), ' ', h('span', {class: 'muted'}, '/'), ' ', f(`underlyings.${i}`, text)),
      h('td', {class: 'num'}, f(`beta.${i}`)),
      h('td', {class: 'num'}, f(`delta.${i}`)),
      h('td', {class: 'num'}, f(`beta_delta.${i}`)),
      h('td', {class: 'num'}, f(`gamma.${i}`)),
      h('td', {class: 'num'}, f(`beta_gamma.${i}`)));
  }));
}

export function render(store) {
  const xKey = store.hashKey('crosshedge');
  const cKey = store.hashKey('cpt');
  const cross = new Map(store.fields(xKey));
  const cpt = new Map(store.fields(cKey));
  const books = [...new Set([...cross.keys(), ...cpt.keys()])].sort();
  if (!books.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no cross hedge or CPT value published ([risk.cross_hedge], [risk.cpt])'));
    return;
  }
  const all = [...cross.entries(), ...cpt.entries()];
  const [newestBook, newest] = all.reduce((a, b) => (later(b[1].ts_ns, a[1].ts_ns) ? b : a));
  const newestKey = cross.get(newestBook) === newest ? xKey : cKey;
  const bench = [...cross.values()].find((p) => p.benchmark)?.benchmark ?? 'benchmark';
  const rows = books.map((book) => {
    const p = cross.get(book);
    const c = cpt.get(book);
    return h('tr', {},
      h('th', {scope: 'row'}, book),
      ...hedgeCells(xKey, book, p),
      ...betaCells(xKey, book, p),
      ...cptCells(cKey, book, c),
      h('td', {class: 'small'}, status(xKey, book, p, 'hedge'), status(cKey, book, c, 'cpt')));
  });
  const firstCpt = cpt.size ? [...cpt.entries()][0] : null;
  root.replaceChildren(h('div', {class: 'card'},
    stamp(newestKey, newestBook, newestKey === xKey ? 'crosshedge' : 'cpt', newest),
    h('div', {class: 'scroll'}, h('table', {class: 'data crosshedge'},
      h('thead', {}, h('tr', {}, head('book'), head('hedge in'),
        head('contracts', 'to trade, + buy', {class: 'num'}),
        head('h*', 'contracts', {class: 'num', title: 'Cov(book P&L, contract P&L) / Var(contract P&L)'}),
        head('R²', 'hedge effectiveness', {class: 'num'}),
        head('P&L vol', 'USD/day unhedged', {class: 'num'}),
        head('vol left', 'USD/day hedged', {class: 'num'}),
        head(`Δ in ${bench}`, `${bench} units, beta-weighted`, {class: 'num'}),
        head(`Γ in ${bench}`, `per 1 ${bench} unit move`, {class: 'num'}),
        head('Δ USD', 'beta-weighted', {class: 'num'}),
        head('CPT value', 'USD^alpha', {class: 'num', title: 'cumulative prospect theory, Tversky and Kahneman 1992'}),
        head('certainty eq.', 'USD', {class: 'num'}),
        head('ES', 'USD, same scenarios', {class: 'num'}),
        head('status'))),
      h('tbody', {}, rows))),
    firstCpt ? params(cKey, ...firstCpt) : null,
    cross.size ? h('details', {class: 'table-of-chart'}, h('summary', {}, `beta to ${bench}, per underlying`),
      h('table', {class: 'data small'},
        h('thead', {}, h('tr', {}, head('book / underlying'), head('beta', '', {class: 'num'}), head('Δ', 'underlying units', {class: 'num'}),
          head(`Δ in ${bench}`, `${bench} units`, {class: 'num'}), head('Γ', 'per 1 unit move', {class: 'num'}), head(`Γ in ${bench}`, `per 1 ${bench} unit move`, {class: 'num'}))),
        h('tbody', {}, betaRows(xKey, [...cross.entries()])))) : null));
}
