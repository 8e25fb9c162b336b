// The stress grid per book (risk:stress:snapshot): P&L under every (spot shock, vol shock), a
// heatmap that is also the table of its data; red a loss, green a gain, the worst cell marked.

import {h, fig, stamp, usd, compact, shock, text} from '../dom.js';

export const id = 'stress';
export const families = ['stress'];

let root;

export function init(el) {
  root = el;
}

function colour(v, scale) {
  const a = Math.min(Math.abs(v) / scale, 1) * 0.85 + 0.05;
  return v < 0 ? `rgba(255, 77, 79, ${a.toFixed(3)})` : `rgba(76, 195, 138, ${a.toFixed(3)})`;
}

function card(key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  let worst = null;
  let scale = 0;
  p.pnl.forEach((row, i) => row.forEach((v, j) => {
    if (v === null) return;
    scale = Math.max(scale, Math.abs(v));
    if (worst === null || v < p.pnl[worst[0]][worst[1]]) worst = [i, j];
  }));
  const grid = h('table', {class: 'heatmap'},
    h('caption', {class: 'small muted'}, `P&L (${p.units.pnl}) by spot shock (rows, ${p.units.spot}) and vol shock (columns, ${p.units.vol})`),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col', class: 'corner'}, 'spot ↓ vol →'),
      ...p.vol.map((_, j) => h('th', {scope: 'col'}, f(`vol.${j}`, shock))))),
    h('tbody', {}, p.pnl.map((row, i) => h('tr', {},
      h('th', {scope: 'row'}, f(`spot.${i}`, shock)),
      ...row.map((v, j) => {
        const isWorst = worst && worst[0] === i && worst[1] === j;
        const td = h('td', {class: `cell${isWorst ? ' worst' : ''}`, title: isWorst ? 'worst cell: the stress loss' : null},
          f(`pnl.${i}.${j}`, compact), isWorst ? h('span', {class: 'marker', 'aria-label': 'worst'}, '▼') : null);
        if (v !== null) td.style.background = colour(v, scale || 1);
        return td;
      })))));
  return h('div', {class: 'card'},
    h('h3', {}, f('book', text)),
    stamp(key, book, 'stress', p),
    h('div', {class: 'headline-figures'},
      h('div', {class: 'big'}, h('span', {class: 'label'}, 'stress loss'), f('stress_loss', usd, {class: 'loss'}), h('span', {class: 'unit'}, p.units.stress_loss))),
    h('div', {class: 'scroll'}, grid),
    p.excluded.length ? h('p', {class: 'small warn'}, 'excluded: ', p.excluded.join(', ')) : null);
}

export function render(store) {
  const key = store.hashKey('stress');
  const books = store.fields(key);
  if (!books.length) {
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no stress grid published yet'));
    return;
  }
  root.replaceChildren(h('div', {class: 'cards'}, books.map(([book, p]) => card(key, book, p))));
}

