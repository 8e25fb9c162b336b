// The stress grid per book (risk:stress:snapshot): P&L under every (spot shock, vol shock), a
// heatmap that is also the table of its data; red a loss, green a gain, the worst cell marked.
// A book's card is built once and its figures updated in place while the grid keeps its shape.

import {h, fig, stamp, refreshAll, usd, compact, shock, text} from '../dom.js';

export const id = 'stress';
export const families = ['stress'];

let root;
const cards = new Map(); // book -> {p, shape, el}

export function init(el) {
  root = el;
}

function colour(v, scale) {
  const a = Math.min(Math.abs(v) / scale, 1) * 0.85 + 0.05;
  return v < 0 ? `rgba(255, 77, 79, ${a.toFixed(3)})` : `rgba(76, 195, 138, ${a.toFixed(3)})`;
}

// Colours every cell and marks the worst (the least P&L: the stress loss).
function paint(el, p) {
  let worst = null;
  let scale = 0;
  p.pnl.forEach((row, i) => row.forEach((v, j) => {
    if (v === null) return;
    scale = Math.max(scale, Math.abs(v));
    if (worst === null || v < p.pnl[worst[0]][worst[1]]) worst = [i, j];
  }));
  el.querySelectorAll('td.cell').forEach((td) => {
    const [i, j] = td.dataset.cell.split('.').map(Number);
    const v = p.pnl[i][j];
    td.style.background = v === null ? '' : colour(v, scale || 1);
    const isWorst = worst !== null && worst[0] === i && worst[1] === j;
    td.classList.toggle('worst', isWorst);
    td.title = isWorst ? 'worst cell: the stress loss' : '';
    td.querySelector('.marker')?.remove();
    if (isWorst) td.append(h('span', {class: 'marker', 'aria-label': 'worst'}, '▼'));
  });
}

function card(key, book, p) {
  const f = (path, fmt = usd, opts) => fig(key, book, p, path, fmt, opts);
  const grid = h('table', {class: 'heatmap'},
    h('caption', {class: 'small muted'}, `P&L (${p.units.pnl}) by spot shock (rows, ${p.units.spot}) and vol shock (columns, ${p.units.vol})`),
    h('thead', {}, h('tr', {}, h('th', {scope: 'col', class: 'corner'}, 'spot ↓ vol →'),
      ...p.vol.map((_, j) => h('th', {scope: 'col'}, f(`vol.${j}`, shock))))),
    h('tbody', {}, p.pnl.map((row, i) => h('tr', {},
      h('th', {scope: 'row'}, f(`spot.${i}`, shock)),
      ...row.map((_, j) => h('td', {class: 'cell', dataset: {cell: `${i}.${j}`}}, f(`pnl.${i}.${j}`, compact)))))));
  const el = h('div', {class: 'card'},
    h('h3', {}, f('book', text)),
    stamp(key, book, 'stress', p),
    h('div', {class: 'headline-figures'},
      h('div', {class: 'big'}, h('span', {class: 'label'}, 'stress loss'), f('stress_loss', usd, {class: 'loss'}), h('span', {class: 'unit'}, p.units.stress_loss))),
    h('div', {class: 'scroll'}, grid),
    h('p', {class: 'small warn excluded'}, p.excluded.length ? `excluded: ${p.excluded.join(', ')}` : ''));
  paint(el, p);
  return el;
}

export function render(store) {
  const key = store.hashKey('stress');
  const books = store.fields(key);
  if (!books.length) {
    cards.clear();
    root.replaceChildren(h('p', {class: 'empty muted'}, 'no stress grid published yet'));
    return;
  }
  const els = books.map(([book, p]) => {
    const shape = `${p.spot.length}x${p.vol.length}`;
    let c = cards.get(book);
    if (!c || c.shape !== shape) {
      c = {p, shape, el: card(key, book, p)};
      cards.set(book, c);
    } else if (c.p !== p) {
      c.p = p;
      refreshAll(c.el, p);
      paint(c.el, p);
      c.el.querySelector('.excluded').textContent = p.excluded.length ? `excluded: ${p.excluded.join(', ')}` : '';
    }
    return c.el;
  });
  for (const book of cards.keys()) {
    if (!books.some(([b]) => b === book)) cards.delete(book);
  }
  const list = root.querySelector(':scope > .cards');
  if (list && list.children.length === els.length && els.every((el, i) => list.children[i] === el)) return;
  root.replaceChildren(h('div', {class: 'cards'}, els));
}
