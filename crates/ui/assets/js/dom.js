// Building DOM nodes without HTML strings: every text goes in as text, never as markup.

/**
 * Creates an element. `attrs`: `class`, `on<event>` handlers, booleans (set when true),
 * `dataset`, anything else as an attribute. Children: nodes, strings, numbers, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (name === 'value' && 'value' in el) {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nested arrays, strings and numbers allowed; null skipped). */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A message box: `kind` is error, warn or info. */
export function message(kind, title, detail) {
  return h('div', { class: `message ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'title' }, title), detail ? h('span', {}, detail) : null);
}

/** An empty state: what is missing and what to do next. */
export function empty(text, ...next) {
  return h('div', { class: 'empty' }, h('p', {}, text), next.length ? h('p', {}, ...next) : null);
}

/** A coloured label. `kind`: ok, warn, bad or '' (neutral). */
export function badge(text, kind = '') {
  return h('span', { class: `badge ${kind}` }, text);
}

/** A table from column headings and rows of cells. A heading `{text, num: true}` aligns right. */
export function table(caption, headings, rows, attrs = {}) {
  const head = headings.map((heading) => typeof heading === 'string'
    ? h('th', { scope: 'col' }, heading)
    : h('th', { scope: 'col', class: heading.num ? 'num' : null }, heading.text));
  const numeric = headings.map((heading) => typeof heading !== 'string' && heading.num);
  return h('table', attrs,
    caption ? h('caption', { class: 'sr-only' }, caption) : null,
    h('thead', {}, h('tr', {}, head)),
    h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell, index) =>
      h('td', { class: numeric[index] ? 'num' : null }, cell))))));
}

/**
 * A periodic refresh that says when it fails: `fn` runs; if it throws, `box` shows that the
 * page is not up to date and why (cleared by the next success).
 */
export function refresher(box, fn) {
  return async () => {
    try {
      await fn();
      box.replaceChildren();
    } catch (error) {
      replace(box, message('warn', 'Not refreshed', ` ${error.message} The page shows what was last received; it tries again by itself.`));
    }
  };
}

/** Shows a short notice in the corner for a few seconds. */
export function toast(text, kind = '') {
  const box = document.getElementById('toasts');
  const note = h('div', { class: `toast ${kind}` }, text);
  box.append(note);
  setTimeout(() => note.remove(), kind === 'error' ? 8000 : 4000);
}
