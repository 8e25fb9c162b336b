// Margin per book (risk:margin:snapshot): initial and maintenance margin (portfolio margin),
// the SPAN-style and standard requirements, the saving over standard margin, and the margin's
// use of the book's equity as a gauge; per underlying below. A book of US listed options and
// futures also shows its US margin: Reg T (strategy-based) and Cboe portfolio margin per class,
// the strategy-based lines, and CME SPAN of its E-mini futures and options.

import {h, fig, head, stamp, usd, compact, pct, text} from '../dom.js';

export const id = 'margin';
export const families = ['margin'];

let root;

export function init(el) {
  root = el;
}

function level(u) {
  if (u === null || u === undefined) return 'none';
  return u >= 0.8 ? 'crit' : u >= 0.5 ? 'warn' : 'ok';
}

function gauge(key, book, p, path, label) {
  const u = p[path];
  const width = u === null ? 0 : Math.min(Math.max(u, 0), 1) * 100;
  const bar = h('div', {class: `gauge-fill ${level(u)}`});
  bar.style.width = `${width.toFixed(2)}%`;
  return h('div', {class: 'gauge', role: 'meter', 'aria-label': `${label} of ${book}`,
    'aria-valuemin': '0', 'aria-valuemax': '1', 'aria-valuenow': u === null ? null : String(u)},
  h('div', {class: 'gauge-label'}, h('span', {}, label), fig(key, book, p, path, pct), h('span', {class: 'unit'}, p.units[path] ?? 'fraction of equity')),
  h('div', {class: 'gauge-track'}, bar, h('div', {class: 'tick t50'}), h('div', {class: 'tick t80'})));
}

function card(key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  const u = p.units;
  const rows = p.underlyings.map((und, i) => h('tr', {},
    h('th', {scope: 'row'}, f(`underlyings.${i}`, text)),
    h('td', {class: 'num'}, p.portfolio ? f(`portfolio.initial_usd.${i}`, compact) : '-'),
    h('td', {class: 'num'}, p.portfolio ? f(`portfolio.maintenance_usd.${i}`, compact) : '-'),
    h('td', {class: 'num'}, p.span ? f(`span.requirement_usd.${i}`, compact) : '-'),
    h('td', {class: 'num'}, p.standard ? f(`standard.initial_usd.${i}`, compact) : '-')));
  if (p.us && p.portfolio === null && p.status === 'ok') {
    // US listed underlyings alone: US margin only (the crypto exchanges' figures are null)
    return h('div', {class: 'card'},
      h('h3', {}, f('book', text)),
      stamp(key, book, 'margin', p),
      h('dl', {class: 'kv'},
        h('dt', {}, 'equity'), h('dd', {}, f('equity_usd'), h('span', {class: 'unit'}, 'USD'))),
      usMargin(key, book, p));
  }
  return h('div', {class: 'card'},
    h('h3', {}, f('book', text), p.status !== 'ok' ? h('span', {class: 'badge warn'}, p.status) : null),
    stamp(key, book, 'margin', p),
    gauge(key, book, p, 'margin_utilisation', 'initial margin use'),
    gauge(key, book, p, 'margin_mm_utilisation', 'maintenance margin use'),
    h('dl', {class: 'kv'},
      h('dt', {}, 'equity'), h('dd', {}, f('equity_usd'), h('span', {class: 'unit'}, 'USD')),
      h('dt', {}, 'initial (portfolio)'), h('dd', {}, f('margin_im'), h('span', {class: 'unit'}, u.margin_im)),
      h('dt', {}, 'maintenance'), h('dd', {}, f('margin_mm'), h('span', {class: 'unit'}, u.margin_mm)),
      h('dt', {}, 'SPAN-style'), h('dd', {}, f('margin_span'), h('span', {class: 'unit'}, u.margin_span)),
      h('dt', {}, 'standard initial'), h('dd', {}, f('margin_standard_im'), h('span', {class: 'unit'}, u.margin_standard_im)),
      h('dt', {}, 'saving over standard'), h('dd', {}, f('margin_savings', usd, {class: 'signed'}), h('span', {class: 'unit'}, u.margin_savings))),
    h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head('underlying'), head('IM', 'USD', {class: 'num', title: 'initial margin (portfolio)'}),
        head('MM', 'USD', {class: 'num', title: 'maintenance margin (portfolio)'}),
        head('SPAN', 'USD', {class: 'num', title: 'SPAN-style requirement'}),
        head('std IM', 'USD', {class: 'num', title: 'standard initial margin'}))),
      h('tbody', {}, rows)),
    p.us ? usMargin(key, book, p) : null,
    p.excluded.length ? h('p', {class: 'small warn'}, 'excluded: ', p.excluded.join(', ')) : null);
}

// The US margin: totals, per class, the Reg T lines, the E-mini's SPAN.
function usMargin(key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  const us = p.us;
  const classes = us.classes.map((c, i) => h('tr', {},
    h('th', {scope: 'row'}, f(`us.classes.${i}`, text), ' ', h('span', {class: 'muted small'}, f(`us.class_kinds.${i}`, (k) => k.replace('_', ' ')))),
    h('td', {class: 'num'}, f(`us.reg_t_requirement_usd.${i}`, compact)),
    h('td', {class: 'num'}, f(`us.reg_t_deposit_usd.${i}`, compact)),
    h('td', {class: 'num'}, f(`us.pm_worst_loss_usd.${i}`, compact)),
    h('td', {class: 'num'}, f(`us.pm_class_usd.${i}`, compact))));
  const lines = us.reg_t_lines.map((x, i) => h('tr', {},
    h('th', {scope: 'row'}, f(`us.reg_t_lines.${i}.rule`, text)),
    h('td', {class: 'small'}, f(`us.reg_t_lines.${i}.${x.strategy ? 'strategy' : 'instruments'}`, (v) => (Array.isArray(v) ? v.join(', ') || 'stock' : String(v).split(':')[0]))),
    h('td', {class: 'num'}, f(`us.reg_t_lines.${i}.units`)),
    h('td', {class: 'num'}, f(`us.reg_t_lines.${i}.requirement_usd`, compact)),
    h('td', {class: 'num'}, f(`us.reg_t_lines.${i}.deposit_usd`, compact))));
  return h('div', {class: 'us-margin', 'data-us': 'margin'},
    h('h4', {}, 'US margin'),
    h('dl', {class: 'kv'},
      h('dt', {}, 'Reg T (strategy-based)'), h('dd', {}, f('margin_reg_t'), h('span', {class: 'unit'}, p.units.margin_reg_t ?? 'USD')),
      h('dt', {}, 'Reg T deposit'), h('dd', {}, f('margin_reg_t_deposit'), h('span', {class: 'unit'}, 'USD, less short proceeds')),
      h('dt', {}, 'Cboe portfolio margin'), h('dd', {}, f('margin_us_portfolio'), h('span', {class: 'unit'}, 'USD, groups: ' + us.pm_groups.map((g) => g.join('+')).join(', '))),
      h('dt', {}, 'CME SPAN (E-mini)'), h('dd', {}, f('margin_cme_span'), h('span', {class: 'unit'}, 'USD'))),
    us.classes.length ? h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head('class'), head('Reg T', 'USD', {class: 'num'}), head('deposit', 'USD', {class: 'num'}),
        head('PM loss', 'USD', {class: 'num', title: 'worst loss over the valuation points'}), head('PM', 'USD', {class: 'num'}))),
      h('tbody', {}, classes)) : null,
    lines.length ? h('table', {class: 'data small'},
      h('thead', {}, h('tr', {}, head('rule'), head('strategy / legs'), head('units', '', {class: 'num'}),
        head('req.', 'USD', {class: 'num'}), head('deposit', 'USD', {class: 'num'}))),
      h('tbody', {}, lines)) : null,
    us.span ? h('p', {class: 'small'}, 'SPAN: scan ', f('us.span.scan_risk_usd', compact), ' + spreads ', f('us.span.intra_spread_charge_usd', compact),
      ', short option min. ', f('us.span.short_option_minimum_usd', compact), ', net option value ', f('us.span.net_option_value_usd', compact, {class: 'signed'}),
      ' USD') : null,
    us.excluded.length ? h('p', {class: 'small warn'}, 'not margined: ', us.excluded.join(', ')) : null);
}

export function render(store) {
  const key = store.hashKey('margin');
  const books = store.fields(key);
  if (!books.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no margin published yet'));
    return;
  }
  root.replaceChildren(h('div', {class: 'cards'}, books.map(([book, p]) => card(key, book, p))));
}
