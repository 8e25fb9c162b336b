// Margin per book (risk:margin:snapshot): initial and maintenance margin (portfolio margin),
// the SPAN-style and standard requirements, the saving over standard margin, and the margin's
// use of the book's equity as a gauge; per underlying below.

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
    p.excluded.length ? h('p', {class: 'small warn'}, 'excluded: ', p.excluded.join(', ')) : null);
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
