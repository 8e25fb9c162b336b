// Where the risk comes from (risk:attribution:snapshot, risk:capital:snapshot): per book and
// for the firm (*), one method's VaR and ES split into Euler components by book, underlying,
// expiry, position and strategy holding, as bars that sum to the total, each with its table
// (component, incremental and standalone figures, the diversification benefit and ratio; by
// strategy also each holding's quantity and marginal ES per unit); and each book's capital
// against its budget.

import {h, fig, head, stamp, usd, num, pct, text, int, sum, ref} from '../dom.js';

export const id = 'attribution';
export const families = ['attribution', 'capital'];

const ORDER = ['historical', 'monte_carlo', 'delta_gamma', 'delta_normal'];
let root;

export function init(el) {
  root = el;
}

// The method shown: the first of ORDER whose figures are there.
function method(p) {
  for (const m of ORDER) {
    const i = p.methods.findIndex((x) => x.method === m && x.status === 'ok');
    if (i >= 0) return i;
  }
  return -1;
}

function bars(key, field, p, mi, bi, measure) {
  const b = p.methods[mi].breakdowns[bi];
  const values = b.parts.map((x) => x[`component_${measure}`] ?? 0);
  const scale = Math.max(...values.map(Math.abs), 1e-12);
  return h('div', {class: 'bars', role: 'img', 'aria-label': `component ${measure.toUpperCase()} by ${b.by}; the table below holds the data`},
    b.parts.map((x, k) => h('div', {class: 'bar-row'},
      h('span', {class: 'bar-label small'}, x.label),
      h('span', {class: `bar ${values[k] < 0 ? 'neg' : 'pos'}`, style: {width: `${(100 * Math.abs(values[k]) / scale).toFixed(1)}%`}}))));
}

// By strategy, two more columns: the holding's quantity and its marginal ES per unit.
const STRATEGY_HEADS = () => [head('quantity', 'units', {class: 'num'}), head('marginal ES', 'USD / unit', {class: 'num'})];

function breakdown(key, field, p, mi, bi) {
  const b = p.methods[mi].breakdowns[bi];
  const strategy = b.by === 'strategy';
  const path = (k, name) => `methods.${mi}.breakdowns.${bi}.parts.${k}.${name}`;
  const f = (pth, fmt = usd, opts) => fig(key, field, p, pth, fmt, opts);
  const col = (name) => b.parts.map((_, k) => ref(key, field, path(k, name)));
  const vals = (name) => b.parts.map((x) => x[name]);
  const perUnit = (k) => (strategy ? [h('td', {class: 'num'}, f(path(k, 'quantity'), num)), h('td', {class: 'num'}, f(path(k, 'marginal_es_per_unit')))] : []);
  return h('div', {class: `breakdown by-${b.by}`},
    h('h4', {}, `by ${b.by}`),
    bars(key, field, p, mi, bi, 'es'),
    h('div', {class: 'scroll-x'}, h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head(b.by), head('component VaR', 'USD', {class: 'num'}), head('component ES', 'USD', {class: 'num'}),
        head('incremental ES', 'USD', {class: 'num'}), head('standalone ES', 'USD', {class: 'num'}), head('positions', '', {class: 'num'}),
        ...(strategy ? STRATEGY_HEADS() : []))),
      h('tbody', {}, b.parts.map((x, k) => h('tr', {},
        h('th', {scope: 'row'}, f(path(k, 'label'), text)),
        h('td', {class: 'num'}, f(path(k, 'component_var'))),
        h('td', {class: 'num'}, f(path(k, 'component_es'))),
        h('td', {class: 'num'}, f(path(k, 'incremental_es'))),
        h('td', {class: 'num'}, f(path(k, 'standalone_es'))),
        h('td', {class: 'num'}, f(path(k, 'positions'), int)),
        ...perUnit(k)))),
      h('tfoot', {}, h('tr', {},
        h('th', {scope: 'row'}, 'sum (= total)'),
        h('td', {class: 'num'}, sum(col('component_var'), vals('component_var'), usd)),
        h('td', {class: 'num'}, sum(col('component_es'), vals('component_es'), usd)),
        h('td', {}), h('td', {class: 'num'}, f(`methods.${mi}.breakdowns.${bi}.standalone_es_sum`)), h('td', {}),
        ...(strategy ? [h('td', {}), h('td', {})] : []))))),
    strategy ? h('p', {class: 'small muted'}, 'each holding\'s share of its legs\' lots (quantity x ratio); (no strategy): the rest of the lots, negative where holdings hold more than the lot') : null,
    h('p', {class: 'small muted'}, 'diversification: ES ', f(`methods.${mi}.breakdowns.${bi}.diversification_es`),
      ' USD (ratio ', f(`methods.${mi}.breakdowns.${bi}.ratio_es`, pct), '), VaR ',
      f(`methods.${mi}.breakdowns.${bi}.diversification_var`), ' USD'));
}

// The correlations of the underlyings' daily log-returns the figures used (a book of one
// underlying has none to show).
function correlations(key, field, p) {
  if (p.underlyings.length < 2) return null;
  const corr = (x) => Number(x).toFixed(2);
  return h('details', {class: 'table-of-chart'},
    h('summary', {}, 'correlations of the underlyings\' daily log-returns over the window'),
    h('div', {class: 'scroll-x'}, h('table', {class: 'data small correlations'},
      h('thead', {}, h('tr', {}, head(''), ...p.underlyings.map((_, j) => h('th', {scope: 'col', class: 'num'}, fig(key, field, p, `underlyings.${j}`, text))))),
      h('tbody', {}, p.underlyings.map((_, i) => h('tr', {},
        h('th', {scope: 'row'}, fig(key, field, p, `underlyings.${i}`, text)),
        ...p.underlyings.map((_, j) => h('td', {class: 'num'}, fig(key, field, p, `correlations.${i}.${j}`, corr)))))))));
}

function card(key, field, p, capital) {
  const mi = method(p);
  const f = (pth, fmt = usd, opts) => fig(key, field, p, pth, fmt, opts);
  const parts = [h('h3', {}, field === '*' ? 'firm (every book)' : f('book', text)), stamp(key, field, 'attribution', p)];
  if (mi < 0) {
    parts.push(h('p', {class: 'muted'}, 'no figures: ', f('methods.0.status', text, {class: 'warn'})));
    return h('div', {class: 'card'}, ...parts);
  }
  parts.push(h('div', {class: 'headline-figures'},
    h('div', {class: 'big'}, h('span', {class: 'label'}, 'VaR'), f(`methods.${mi}.var`, usd, {class: 'loss'}), h('span', {class: 'unit'}, 'USD')),
    h('div', {class: 'big'}, h('span', {class: 'label'}, 'ES'), f(`methods.${mi}.es`, usd, {class: 'loss'}), h('span', {class: 'unit'}, 'USD'))),
  h('p', {class: 'small muted params'}, 'method ', f(`methods.${mi}.method`, (m) => m.replace('_', ' ')),
    ', VaR at ', f('confidence', pct), ', ES at ', f('es_confidence', pct), ', ', f('positions', int), ' positions'));
  if (capital) parts.push(capital);
  p.methods[mi].breakdowns.forEach((_, bi) => parts.push(breakdown(key, field, p, mi, bi)));
  parts.push(correlations(key, field, p));
  return h('div', {class: 'card'}, ...parts);
}

function capitalTable(ckey, rows) {
  if (!rows.length) return null;
  return h('div', {class: 'scroll-x'}, h('table', {class: 'data small capital'},
    h('caption', {}, 'capital: each book\'s Euler share of the firm\'s figure, against its budget'),
    h('thead', {}, h('tr', {}, head('book'), head('capital', 'USD', {class: 'num'}), head('share', '', {class: 'num'}),
      head('budget', 'USD', {class: 'num'}), head('utilisation', '', {class: 'num'}))),
    h('tbody', {}, rows.map(([book, c]) => h('tr', {},
      h('th', {scope: 'row'}, fig(ckey, book, c, 'book', text)),
      h('td', {class: 'num'}, fig(ckey, book, c, 'capital_usd', usd)),
      h('td', {class: 'num'}, fig(ckey, book, c, 'capital_share', pct)),
      h('td', {class: 'num'}, fig(ckey, book, c, 'capital_budget_usd', usd)),
      h('td', {class: 'num'}, fig(ckey, book, c, 'capital_utilisation', pct, {class: (c.capital_utilisation ?? 0) > 1 ? 'warn' : ''})))))));
}

export function render(store) {
  const key = store.hashKey('attribution');
  const ckey = store.hashKey('capital');
  const rows = store.fields(key);
  if (!rows.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no attribution published yet (risk.attribution enabled, history of moves?)'));
    return;
  }
  const firm = rows.filter(([b]) => b === '*');
  const books = rows.filter(([b]) => b !== '*');
  const capital = capitalTable(ckey, store.fields(ckey));
  root.replaceChildren(h('div', {class: 'cards'},
    ...firm.map(([b, p]) => card(key, b, p, capital)),
    ...books.map(([b, p]) => card(key, b, p, null))));
}
