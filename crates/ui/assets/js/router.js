// Hash routing: `#/services/web?x=1` renders the services page with params {name: 'web'} and
// query {x: '1'}. A page is `async render(ctx)`; whatever it throws is shown as a message.

import { h, replace, message } from './dom.js';

const routes = [];
let cleanups = [];
let generation = 0;

/** Registers a page for a pattern such as `/services/:name`, with its window title. */
export function route(pattern, nav, title, render) {
  const names = [];
  const regex = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, name) => { names.push(name); return '([^/]+)'; })}$`);
  routes.push({ regex, names, nav, title, render });
}

/** The current hash, split into a path and query parameters. */
export function current() {
  const hash = location.hash.replace(/^#/, '') || '/overview';
  const [path, search = ''] = hash.split('?');
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

/** A hash link for a path and query parameters (empty values dropped). */
export function link(path, query = {}) {
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const search = params.toString();
  return `#${path}${search ? `?${search}` : ''}`;
}

/** Changes the query of the current page without rendering it again (history entry replaced). */
export function setQuery(query) {
  const { path } = current();
  history.replaceState(null, '', link(path, query));
}

/** Renders the page of the current hash into `main`. */
export async function render(main) {
  for (const cleanup of cleanups) cleanup();
  cleanups = [];
  const mine = ++generation;
  const { path, query } = current();
  const found = routes.map((r) => ({ r, m: r.regex.exec(path) })).find(({ m }) => m);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (found && a.dataset.nav === found.r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!found) {
    replace(main, h('h1', {}, 'Page not found'),
      message('warn', `There is no page at ${path}.`, ' '), h('a', { href: '#/overview' }, 'Go to the overview'));
    return;
  }
  const params = Object.fromEntries(found.r.names.map((name, i) => [name, decodeURIComponent(found.m[i + 1])]));
  document.title = `${found.r.title}${params.name ? ` ${params.name}` : ''} · Caravan`;
  replace(main, h('p', { class: 'loading' }, 'Loading…'));
  const ctx = {
    main, params, query,
    /** Whether this page is still the one shown (false once the user navigated away). */
    live: () => mine === generation,
    /** Runs `fn` when the user leaves the page (timers, listeners). */
    onLeave: (fn) => cleanups.push(fn),
    /** Calls `fn` every `ms` while the page is shown. */
    every: (ms, fn) => { const id = setInterval(() => { if (mine === generation) fn(); }, ms); cleanups.push(() => clearInterval(id)); },
  };
  try {
    await found.r.render(ctx);
  } catch (error) {
    if (mine !== generation) return;
    console.error(error);
    replace(main, h('h1', {}, 'Something went wrong'),
      message('error', error.status ? `The server answered ${error.status}` : 'The page could not be shown', ` ${error.message}`),
      h('button', { type: 'button', onclick: () => render(main) }, 'Try again'));
  }
}
