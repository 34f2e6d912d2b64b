// Logs (discover): query bar, time range, histogram (drag to zoom), results with expandable
// documents, the schema's fields with their top values, live tail. The page's state is in the
// address (`#/logs?tenant=payments&q=level:ERROR&from=now-1h`), so a search can be shared.

import * as api from '../api.js';
import { h, replace, message, empty, badge } from '../dom.js';
import { setQuery } from '../router.js';
import * as fmt from '../format.js';

const PAGE_SIZE = 50;
const HISTOGRAM_BUCKETS = 60;
const TAIL_MS = 2000;
const PRESETS = [
  ['now-15m', 'Last 15 minutes'], ['now-1h', 'Last hour'], ['now-24h', 'Last 24 hours'],
  ['now-7d', 'Last 7 days'], ['now-30d', 'Last 30 days'], ['absolute', 'Absolute range…'],
];
/** Field types the terms aggregation takes (top values); numbers and dates get statistics. */
const TERMS_TYPES = new Set(['keyword', 'boolean']);
const STATS_TYPES = new Set(['long', 'double', 'date']);

export async function render(ctx) {
  const me = await api.whoami();
  if (!api.can(me, 'logs:read')) {
    replace(ctx.main, h('h1', {}, 'Logs'), message('info', 'This token cannot read logs.',
      ' Searching needs an admin token or a tenant token with the logs:read scope.'));
    return;
  }
  const tenants = me.kind === 'admin' ? await api.visibleTenants() : [me.tenant];
  if (tenants.length === 0) {
    replace(ctx.main, h('h1', {}, 'Logs'), empty('No tenants yet, so no logs.',
      'Create a tenant (', h('code', {}, 'caravan tenant create payments'), ') and ship logs to ',
      h('code', {}, 'POST /_bulk'), ' with one of its tokens.'));
    return;
  }
  const state = {
    tenant: ctx.query.tenant && (ctx.query.tenant === '*' || tenants.includes(ctx.query.tenant)) ? ctx.query.tenant : tenants[0],
    q: ctx.query.q ?? '',
    from: ctx.query.from ?? 'now-15m',
    to: ctx.query.to ?? '',
    live: ctx.query.live === '1',
  };
  new Discover(ctx, tenants, state, me).mount();
}

class Discover {
  constructor(ctx, tenants, state, me) {
    Object.assign(this, { ctx, tenants, state, me });
    this.hits = [];
    this.seen = new Set();
    this.next = null;
    this.request = 0;
    this.plot = null;
    this.expanded = new Set();
  }

  mount() {
    const { state } = this;
    this.tenantSelect = h('select', { id: 'log-tenant', name: 'tenant', disabled: this.me.kind !== 'admin' },
      this.me.kind === 'admin' && this.tenants.length > 1 ? h('option', { value: '*' }, 'All tenants') : null,
      this.tenants.map((t) => h('option', { value: t }, t)));
    this.tenantSelect.value = state.tenant;
    this.queryInput = h('input', {
      type: 'search', id: 'log-query', name: 'q', value: state.q, autocomplete: 'off', spellcheck: 'false',
      placeholder: 'level:ERROR AND http.status:>=500   (empty: everything)', 'aria-describedby': 'query-help',
    });
    const absolute = !PRESETS.some(([value]) => value === state.from) || state.to !== '';
    this.rangeSelect = h('select', { id: 'log-range', name: 'range' }, PRESETS.map(([value, text]) => h('option', { value }, text)));
    this.rangeSelect.value = absolute ? 'absolute' : state.from;
    this.fromInput = h('input', { type: 'datetime-local', id: 'log-from', name: 'from', step: 1 });
    this.toInput = h('input', { type: 'datetime-local', id: 'log-to', name: 'to', step: 1 });
    if (absolute) this.setAbsoluteInputs(state.from, state.to);
    this.absoluteBox = h('div', { class: 'form-row', hidden: !absolute },
      h('label', { for: 'log-from' }, 'From', this.fromInput), h('label', { for: 'log-to' }, 'To', this.toInput));
    this.liveBox = h('input', { type: 'checkbox', id: 'log-live', name: 'live', checked: state.live });
    this.rangeSelect.addEventListener('change', () => {
      const isAbsolute = this.rangeSelect.value === 'absolute';
      this.absoluteBox.hidden = !isAbsolute;
      if (isAbsolute) {
        this.setAbsoluteInputs(this.state.from, this.state.to || 'now');
        this.fromInput.focus();
      } else {
        this.search();
      }
    });
    this.tenantSelect.addEventListener('change', () => { this.loadFields(); this.search(); });
    this.liveBox.addEventListener('change', () => this.toggleLive());

    const form = h('form', { class: 'query-bar', role: 'search', 'aria-label': 'Log search' },
      h('label', { for: 'log-tenant' }, 'Tenant', this.tenantSelect),
      h('label', { for: 'log-query', class: 'query' }, 'Query', this.queryInput),
      h('label', { for: 'log-range' }, 'Time range', this.rangeSelect),
      h('button', { type: 'submit', id: 'log-search' }, 'Search'),
      h('label', { class: 'inline', for: 'log-live' }, this.liveBox, `Live tail (every ${TAIL_MS / 1000} s)`));
    form.addEventListener('submit', (event) => { event.preventDefault(); this.search(); });
    this.absoluteBox.addEventListener('change', () => this.search());

    this.errorBox = h('div', { 'aria-live': 'assertive' });
    this.countLine = h('p', { class: 'count', id: 'hit-line', 'aria-live': 'polite' });
    // The histogram zooms with the mouse (drag) or the keyboard (arrows pick buckets, Enter).
    this.histogram = h('div', {
      class: 'histogram', id: 'histogram', tabindex: 0, role: 'group', 'aria-roledescription': 'histogram',
      'aria-label': 'Histogram of matching logs over time', 'aria-describedby': 'histogram-help histogram-status',
    });
    this.histogram.addEventListener('keydown', (event) => this.histogramKey(event));
    this.histogram.addEventListener('blur', () => this.clearBucketSelection());
    this.histogramStatus = h('p', { class: 'muted histogram-status', id: 'histogram-status', 'aria-live': 'polite' });
    this.zoomOutButton = h('button', { type: 'button', class: 'secondary small', id: 'zoom-out', hidden: true, onclick: () => this.zoomOut() }, 'Zoom out');
    this.hitList = h('ul', { class: 'hits', id: 'hits', 'aria-label': 'Matching logs' });
    this.moreButton = h('button', { type: 'button', class: 'secondary', hidden: true, onclick: () => this.loadMore() }, 'Load more');
    this.fieldFilter = h('input', { type: 'search', id: 'field-filter', placeholder: 'Filter fields', 'aria-label': 'Filter fields' });
    this.fieldList = h('ul', { id: 'field-list' });
    this.fieldFilter.addEventListener('input', () => this.filterFields());

    this.results = h('section', { 'aria-label': 'Results' },
      h('div', { class: 'panel' },
        h('div', { class: 'count-row' }, this.countLine, this.zoomOutButton),
        this.histogram,
        h('p', { class: 'sr-only', id: 'histogram-help' },
          'Left and right arrows pick a bucket, with Shift to widen the selection; Enter zooms to it; minus zooms out; Escape clears.'),
        this.histogramStatus),
      h('div', { class: 'panel' }, this.hitList, this.moreButton));
    replace(this.ctx.main,
      h('h1', {}, 'Logs'),
      form,
      this.absoluteBox,
      h('p', { id: 'query-help', class: 'muted' },
        'Kibana syntax: field:value, AND / OR / NOT, "phrases", ranges such as http.status:>=500, wildcards. Aliases work (user_id finds userId). Drag on the chart to zoom (or focus it: arrow keys, Enter).'),
      this.errorBox,
      h('div', { class: 'discover' },
        h('aside', { class: 'sidebar panel', 'aria-labelledby': 'fields-title' },
          h('h2', { id: 'fields-title', style: 'margin-top:0' }, 'Fields'),
          this.fieldFilter, this.fieldList),
        this.results));
    const resize = () => this.plot?.setSize({ width: this.histogram.clientWidth, height: 170 });
    window.addEventListener('resize', resize);
    this.ctx.onLeave(() => { window.removeEventListener('resize', resize); this.stopLive(); });
    this.loadFields();
    this.search();
    if (this.state.live) this.startLive();
  }

  /** The tenants of a search request. */
  tenantsParam() {
    return [this.tenantSelect.value || this.tenants[0]];
  }

  /** The range the controls say: relative presets as date math, absolute inputs as ISO. */
  range() {
    if (this.rangeSelect.value !== 'absolute') return { from: this.rangeSelect.value, to: '' };
    const iso = (input, fallback) => (input.value ? new Date(input.value).toISOString() : fallback);
    return { from: iso(this.fromInput, 'now-15m'), to: iso(this.toInput, '') };
  }

  setAbsoluteInputs(from, to) {
    const toDate = (text) => {
      if (!text || text === 'now') return new Date();
      const match = /^now-(\d+)([mhd])$/.exec(text);
      if (match) return new Date(Date.now() - Number(match[1]) * { m: 60e3, h: 3600e3, d: 86400e3 }[match[2]]);
      const date = new Date(text);
      return Number.isNaN(date.getTime()) ? new Date() : date;
    };
    this.fromInput.value = fmt.localInput(toDate(from)) + ':' + String(toDate(from).getSeconds()).padStart(2, '0');
    this.toInput.value = fmt.localInput(toDate(to)) + ':' + String(toDate(to).getSeconds()).padStart(2, '0');
    // Keep the exact instants (the inputs show seconds only).
    this.exact = { from: toDate(from).toISOString(), to: toDate(to).toISOString(), fromValue: this.fromInput.value, toValue: this.toInput.value };
  }

  body(after) {
    let { from, to } = this.range();
    // Inputs untouched since an exact range was set (a zoom, an address): that exact range.
    if (this.rangeSelect.value === 'absolute' && this.exact
      && this.fromInput.value === this.exact.fromValue && this.toInput.value === this.exact.toValue) {
      ({ from, to } = this.exact);
    }
    // `to` always given: the histogram spans the range asked for (without it, all time).
    const body = { tenants: this.tenantsParam(), query: this.queryInput.value.trim(), from, to: to || 'now', size: PAGE_SIZE };
    if (after) body.after = after;
    else body.aggregations = { histogram: { date_histogram: { buckets: HISTOGRAM_BUCKETS } } };
    return body;
  }

  async search({ tail = false } = {}) {
    const mine = ++this.request;
    const body = this.body();
    setQuery({ tenant: this.tenantSelect.value, q: body.query, from: body.from, to: body.to === 'now' ? '' : body.to, live: this.liveBox.checked ? '1' : '' });
    if (!tail) this.countLine.textContent = 'Searching…';
    this.countLine.setAttribute('aria-busy', 'true');
    let result;
    try {
      result = await api.post('/api/v1/logs/search', body);
    } catch (error) {
      if (mine !== this.request || !this.ctx.live()) return;
      this.showError(error, body.query);
      return;
    }
    if (mine !== this.request || !this.ctx.live()) return;
    this.countLine.setAttribute('aria-busy', 'false');
    this.results.classList.remove('stale');
    this.queryInput.removeAttribute('aria-invalid');
    this.errorBox.replaceChildren();
    const previous = this.seen;
    this.hits = result.hits;
    this.seen = new Set(result.hits.map((hit) => hit._id));
    this.next = result.next ?? null;
    replace(this.countLine,
      h('strong', { id: 'hit-count', dataset: { total: String(result.total) } }, fmt.count(result.total)),
      ` ${result.total === 1 ? 'log' : 'logs'} match`, h('span', { class: 'muted' }, ` · ${result.took_ms} ms`));
    this.drawHistogram(result.aggregations?.histogram?.date_histogram);
    this.renderHits(tail ? previous : null);
  }

  async loadMore() {
    if (!this.next) return;
    this.moreButton.disabled = true;
    try {
      const result = await api.post('/api/v1/logs/search', this.body(this.next));
      this.hits = this.hits.concat(result.hits);
      for (const hit of result.hits) this.seen.add(hit._id);
      this.next = result.next ?? null;
      this.renderHits(null);
    } catch (error) {
      this.showError(error, this.queryInput.value);
    } finally {
      this.moreButton.disabled = false;
    }
  }

  /** An error, at its place in the query when the server gave one (`error.position`). */
  showError(error, query) {
    this.results.classList.add('stale');
    this.countLine.textContent = '';
    this.countLine.setAttribute('aria-busy', 'false');
    const position = error.position;
    if (position && query && Number.isInteger(position.start) && Number.isInteger(position.end)) {
      const start = utf16Index(query, position.start);
      // A point (a syntax error) selects the character there, if there is one.
      const end = position.end > position.start ? utf16Index(query, position.end)
        : Math.min(query.length, start + (query.codePointAt(start) > 0xffff ? 2 : 1));
      this.queryInput.setAttribute('aria-invalid', 'true');
      this.queryInput.focus();
      this.queryInput.setSelectionRange(start, end);
      // The marker line counts characters (code points), not UTF-16 units.
      const column = [...query.slice(0, start)].length;
      const width = Math.max(1, [...query.slice(start, end)].length);
      replace(this.errorBox, h('div', { class: 'message error query-error', role: 'alert', id: 'query-error' },
        h('span', { class: 'title' }, 'The query has an error'),
        h('span', {}, error.message),
        h('pre', { 'aria-hidden': 'true' }, `${query}\n${' '.repeat(column)}${'^'.repeat(width)}`)));
    } else {
      replace(this.errorBox, message('error', error.status === 400 ? 'The search was refused' : 'The search failed', ` ${error.message}`));
    }
  }

  drawHistogram(histogram) {
    if (!histogram || !window.uPlot) {
      replace(this.histogram, h('p', { class: 'muted' }, 'No histogram.'));
      return;
    }
    const xs = histogram.buckets.map((b) => b.start_ms / 1000);
    this.bucketSelection = null;
    this.histogramStatus.textContent = '';
    this.zoomOutButton.hidden = xs.length === 0;
    // Bars stand for whole buckets: the x axis ends where the last bucket ends.
    this.bucketS = histogram.interval_ms / 1000;
    const ys = histogram.buckets.map((b) => b.count);
    const total = ys.reduce((a, b) => a + b, 0);
    this.histogram.setAttribute('aria-label', `Histogram: ${fmt.count(total)} logs in ${xs.length} intervals of ${Math.round(histogram.interval_ms / 1000)} s`);
    if (this.plot) {
      this.plot.setData([xs, ys]);
      return;
    }
    this.histogram.replaceChildren();
    const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#1f4e79';
    this.plot = new window.uPlot({
      width: this.histogram.clientWidth || 800,
      height: 170,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true, range: (u, min, max) => [min, max + (this.bucketS ?? 0)] } },
      axes: [{}, { size: 50 }],
      series: [{}, {
        label: 'Logs', fill: `${accent}99`, stroke: accent,
        paths: window.uPlot.paths.bars({ size: [0.9, 40] }), points: { show: false },
      }],
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 3) return;
          // The whole buckets the selection touches.
          const first = u.data[0][0] ?? 0;
          const step = this.bucketS || 1;
          const bucket = (x) => first + Math.floor((x - first) / step) * step;
          const from = bucket(u.posToVal(u.select.left, 'x')) * 1000;
          const to = (bucket(u.posToVal(u.select.left + u.select.width, 'x')) + step) * 1000;
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          this.zoom(from, to);
        }],
      },
    }, [xs, ys], this.histogram);
  }

  /** Keyboard zoom: arrows move over buckets (Shift widens), Enter zooms, `-` zooms out. */
  histogramKey(event) {
    const xs = this.plot?.data[0] ?? [];
    if (xs.length === 0) return;
    const last = xs.length - 1;
    const selection = this.bucketSelection ?? { anchor: last, focus: last };
    let { anchor, focus } = selection;
    switch (event.key) {
      case 'ArrowLeft': focus = Math.max(0, (this.bucketSelection ? focus : last + 1) - 1); break;
      case 'ArrowRight': focus = Math.min(last, focus + (this.bucketSelection ? 1 : 0)); break;
      case 'Home': focus = 0; break;
      case 'End': focus = last; break;
      case 'Enter': case ' ': {
        event.preventDefault();
        const first = Math.min(anchor, focus);
        const end = Math.max(anchor, focus);
        this.clearBucketSelection();
        this.zoom(xs[first] * 1000, (xs[end] + this.bucketS) * 1000);
        return;
      }
      case '-': event.preventDefault(); this.zoomOut(); return;
      case 'Escape': this.clearBucketSelection(); return;
      default: return;
    }
    event.preventDefault();
    if (!event.shiftKey) anchor = focus;
    this.bucketSelection = { anchor, focus };
    const first = Math.min(anchor, focus);
    const end = Math.max(anchor, focus);
    const u = this.plot;
    const left = u.valToPos(xs[first], 'x');
    u.setSelect({ left, width: Math.max(2, u.valToPos(xs[end] + this.bucketS, 'x') - left), top: 0, height: u.over.clientHeight }, false);
    const count = u.data[1].slice(first, end + 1).reduce((a, b) => a + b, 0);
    this.histogramStatus.textContent = `${fmt.time(xs[first] * 1000)} to ${fmt.time((xs[end] + this.bucketS) * 1000)}: `
      + `${fmt.count(count)} ${count === 1 ? 'log' : 'logs'}. Enter zooms in.`;
  }

  clearBucketSelection() {
    if (!this.bucketSelection) return;
    this.bucketSelection = null;
    this.plot?.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
    this.histogramStatus.textContent = '';
  }

  /** Twice the histogram's span around its middle, never past now. */
  zoomOut() {
    const xs = this.plot?.data[0] ?? [];
    if (xs.length === 0) return;
    const from = xs[0] * 1000;
    const to = (xs[xs.length - 1] + (this.bucketS ?? 0)) * 1000;
    const half = Math.max(to - from, 60_000) / 2;
    const end = Math.min(Date.now(), to + half);
    this.zoom(Math.min(from - half, end - 4 * half), end);
  }

  zoom(fromMs, toMs) {
    if (this.liveBox.checked) { this.liveBox.checked = false; this.stopLive(); }
    this.rangeSelect.value = 'absolute';
    this.absoluteBox.hidden = false;
    this.setAbsoluteInputs(new Date(fromMs).toISOString(), new Date(toMs).toISOString());
    this.search();
  }

  renderHits(previous) {
    this.moreButton.hidden = !this.next;
    if (this.hits.length === 0) {
      replace(this.hitList, h('li', {}, empty('No logs match in this time range.',
        'Widen the time range, remove a condition, or check that logs arrive (', h('code', {}, 'caravan logs usage --tenant NAME'), ').')));
      return;
    }
    replace(this.hitList, this.hits.map((hit) => this.hitItem(hit, previous && !previous.has(hit._id))));
  }

  hitItem(hit, isNew) {
    const source = hit._source ?? {};
    const open = this.expanded.has(hit._id);
    const detailsId = `hit-${hit._id.replace(/[^A-Za-z0-9_-]/g, '_')}`;
    const details = h('div', { id: detailsId, hidden: !open }, open ? fieldsTable(source) : null);
    const level = source.level;
    const toggle = h('button', { type: 'button', 'aria-expanded': String(open), 'aria-controls': detailsId },
      h('span', { class: 'mono' }, fmt.time(hit['@timestamp'])),
      h('span', {}, badge(level ?? hit.tenant, level === 'ERROR' || level === 'FATAL' ? 'bad' : level === 'WARN' ? 'warn' : '')),
      h('span', { class: 'summary' }, summary(source, hit.tenant)));
    toggle.addEventListener('click', () => {
      const nowOpen = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(nowOpen));
      if (nowOpen) { this.expanded.add(hit._id); replace(details, fieldsTable(source)); } else this.expanded.delete(hit._id);
      details.hidden = !nowOpen;
    });
    return h('li', { class: `hit${isNew ? ' new' : ''}` }, toggle, details);
  }

  // Fields sidebar: the dictionary of the selected tenant (the common schema for "all").
  async loadFields() {
    const tenant = this.tenantSelect.value;
    replace(this.fieldList, h('li', { class: 'muted' }, 'Loading fields…'));
    let dictionary;
    try {
      dictionary = tenant === '*'
        ? (await api.get('/api/v1/schema')).dictionary
        : await api.get(`/api/v1/tenants/${api.seg(tenant)}/schema/dictionary`);
    } catch (error) {
      replace(this.fieldList, h('li', {}, error.status === 404
        ? empty('No schema yet.', 'Push one: ', h('code', {}, 'caravan schema push examples/schema/log_schema.proto'))
        : message('error', 'Fields unavailable', ` ${error.message}`)));
      return;
    }
    this.fields = dictionary.fields.filter((f) => f.indexed && f.type !== 'object');
    replace(this.fieldList, this.fields.map((field) => this.fieldItem(field)));
    this.filterFields();
  }

  fieldItem(field) {
    const values = h('div', { class: 'top-values', hidden: true, 'aria-live': 'polite' });
    const button = h('button', { type: 'button', class: 'field', 'aria-expanded': 'false', title: field.aliases.length ? `Aliases: ${field.aliases.join(', ')}` : null },
      h('span', { class: 'mono' }, field.key), h('span', { class: 'type' }, field.type));
    button.addEventListener('click', async () => {
      const open = button.getAttribute('aria-expanded') !== 'true';
      button.setAttribute('aria-expanded', String(open));
      values.hidden = !open;
      if (open) await this.topValues(field, values);
    });
    return h('li', { dataset: { key: field.key } }, button, values);
  }

  filterFields() {
    const text = this.fieldFilter.value.trim().toLowerCase();
    for (const li of this.fieldList.children) {
      if (li.dataset.key) li.hidden = text !== '' && !li.dataset.key.toLowerCase().includes(text);
    }
  }

  async topValues(field, box) {
    if (!TERMS_TYPES.has(field.type) && !STATS_TYPES.has(field.type)) {
      const hint = field.type === 'map' ? `${field.key}.KEY:value` : `${field.key}:word`;
      replace(box, h('p', { class: 'muted' }, `No top values for a ${field.type} field; search it with ${hint}.`));
      return;
    }
    replace(box, h('p', { class: 'muted' }, 'Counting…'));
    const body = this.body();
    body.size = 0;
    body.aggregations = TERMS_TYPES.has(field.type)
      ? { top: { terms: { field: field.key, size: 5 } } }
      : { top: { stats: { field: field.key } } };
    try {
      const result = await api.post('/api/v1/logs/search', body);
      const top = result.aggregations.top;
      if (top.terms) {
        const buckets = top.terms.buckets;
        replace(box, buckets.length === 0 ? h('p', { class: 'muted' }, 'No values in these logs.')
          : h('ul', {}, buckets.map((b) => h('li', {},
            h('button', { type: 'button', class: 'link', title: `Add ${field.key}:"${b.key}" to the query`, onclick: () => this.addCondition(field.key, b.key) }, b.key),
            h('span', { class: 'muted' }, fmt.count(b.count))))));
      } else {
        const s = top.stats;
        const show = (v) => (v === null || v === undefined ? '—' : field.type === 'date' ? fmt.time(v) : Number(v).toLocaleString('en-US', { maximumFractionDigits: 2 }));
        replace(box, h('ul', {}, [['count', fmt.count(s.count)], ['min', show(s.min)], ['avg', show(s.avg)], ['max', show(s.max)]]
          .map(([k, v]) => h('li', {}, h('span', {}, k), h('span', { class: 'muted' }, v)))));
      }
    } catch (error) {
      replace(box, message('error', 'No top values', ` ${error.message}`));
    }
  }

  addCondition(key, value) {
    const condition = `${key}:"${String(value).replace(/(["\\])/g, '\\$1')}"`;
    const current = this.queryInput.value.trim();
    this.queryInput.value = current ? `${current} AND ${condition}` : condition;
    this.search();
  }

  // Live tail: the search again every few seconds over a moving relative range; new logs are
  // marked.
  toggleLive() {
    if (this.liveBox.checked) this.startLive(); else this.stopLive();
    this.search();
  }

  startLive() {
    if (this.rangeSelect.value === 'absolute') {
      this.rangeSelect.value = 'now-15m';
      this.absoluteBox.hidden = true;
    }
    this.stopLive();
    this.timer = setInterval(() => { if (this.ctx.live()) this.search({ tail: true }); }, TAIL_MS);
  }

  stopLive() {
    clearInterval(this.timer);
    this.timer = null;
  }
}

/** One line for a log: its message, then its other fields as `key=value`. */
function summary(source, tenant) {
  const text = source.message ?? '';
  const rest = flatten(source)
    .filter(([key]) => !['message', '@timestamp', 'level'].includes(key) && !key.startsWith('_ignored'))
    .slice(0, 8)
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
    .join(' ');
  return `${tenant} · ${text}${text ? '  ' : ''}${rest}`;
}

/** Nested objects flattened to dotted keys. */
function flatten(value, prefix = '', out = []) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

/** A document's fields, with the values that did not fit their key's type (`_ignored`) marked. */
function fieldsTable(source) {
  const ignored = Array.isArray(source._ignored) ? source._ignored : [];
  const rows = flatten(Object.fromEntries(Object.entries(source).filter(([k]) => k !== '_ignored')))
    .map(([key, value]) => h('tr', {}, h('th', { scope: 'row', class: 'mono' }, key),
      h('td', { class: 'mono' }, typeof value === 'string' ? value : JSON.stringify(value))));
  const ignoredRows = ignored.map((item) => h('tr', { class: 'ignored' },
    h('th', { scope: 'row', class: 'mono' }, item.key ?? '?'),
    h('td', { class: 'mono' }, JSON.stringify(item.value), ' ', badge('ignored', 'warn'), ' ',
      h('span', { class: 'muted' }, item.reason ?? 'does not fit the key\'s type'))));
  return h('table', { class: 'fields' },
    h('caption', { class: 'sr-only' }, 'Fields of this log'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Value'))),
    h('tbody', {}, rows, ignoredRows));
}

/**
 * The JavaScript string index (UTF-16 units) of a UTF-8 byte offset into `text`: the server
 * counts bytes, the input's selection counts UTF-16 units. An offset inside a character maps
 * to that character's start; past the end, to the end.
 */
export function utf16Index(text, byteOffset) {
  let bytes = 0;
  let index = 0;
  for (const char of text) {
    const code = char.codePointAt(0);
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (bytes + size > byteOffset) return index;
    bytes += size;
    index += char.length;
  }
  return index;
}
