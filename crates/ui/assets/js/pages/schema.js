// The schema browser: the dictionary in force (common schema, or a tenant's with its
// extension), its keys, types, aliases, text and default fields; and the versions.

import * as api from '../api.js';
import { h, replace, message, empty, badge, table } from '../dom.js';
import { setQuery } from '../router.js';
import * as fmt from '../format.js';

export async function render(ctx) {
  const me = await api.whoami();
  const tenants = me.kind === 'admin' ? await api.visibleTenants() : [me.tenant];
  const chosen = ctx.query.tenant && tenants.includes(ctx.query.tenant) ? ctx.query.tenant : '';
  const select = h('select', { id: 'schema-tenant', name: 'tenant' },
    h('option', { value: '' }, 'Common schema'),
    tenants.map((t) => h('option', { value: t }, `Tenant ${t} (common + extension)`)));
  select.value = chosen;
  const filter = h('input', { type: 'search', id: 'schema-filter', placeholder: 'Key or alias', autocomplete: 'off' });
  const body = h('div', {});
  replace(ctx.main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Log schema')),
    h('p', { class: 'muted' }, 'The keys teams may log and their types. Aliases are renamed to their key at ingest and in queries; text keys are searched by word; default fields are searched by queries that name no field.'),
    h('div', { class: 'form-row' },
      h('label', { for: 'schema-tenant' }, 'Dictionary', select),
      h('label', { for: 'schema-filter' }, 'Filter keys', filter)),
    body);
  const show = async () => {
    setQuery({ tenant: select.value });
    replace(body, h('p', { class: 'loading' }, 'Loading…'));
    try {
      await renderDictionary(body, select.value, filter);
    } catch (error) {
      replace(body, error.status === 404
        ? empty('No schema has been pushed yet.', 'Push the common schema with ',
          h('code', {}, 'caravan schema push examples/schema/log_schema.proto'), '.')
        : message('error', 'The schema could not be loaded', ` ${error.message}`));
    }
  };
  select.addEventListener('change', show);
  filter.addEventListener('input', () => applyFilter(body, filter.value));
  await show();
}

async function renderDictionary(body, tenant, filter) {
  const base = tenant ? `/api/v1/tenants/${api.seg(tenant)}/schema` : '/api/v1/schema';
  const [dictionary, common, extension] = await Promise.all([
    tenant ? api.get(`${base}/dictionary`) : api.get('/api/v1/schema').then((v) => v.dictionary),
    api.get('/api/v1/schema/versions'),
    tenant ? api.get(`${base}/versions`) : Promise.resolve(null),
  ]);
  const rows = dictionary.fields.map((f) => {
    const cells = [
      h('code', {}, f.key),
      f.type + (f.repeated ? ' (repeated)' : ''),
      f.aliases.length ? f.aliases.map((a) => h('code', { style: 'margin-right:.4rem' }, a)) : h('span', { class: 'muted' }, '—'),
      [f.type === 'text' ? badge('text', 'ok') : null, ' ', f.default_field ? badge('default field') : null],
      f.indexed ? 'yes' : badge('stored only', 'warn'),
      [f.enum_values?.length ? `one of ${f.enum_values.join(', ')}` : '', f.ignore_above ? ` longer than ${f.ignore_above} not indexed` : ''].join(''),
    ];
    return cells;
  });
  const t = table('Keys', ['Key', 'Type', 'Aliases', 'Search', 'Indexed', 'Notes'], rows, { id: 'schema-table' });
  t.querySelectorAll('tbody tr').forEach((tr, i) => {
    const f = dictionary.fields[i];
    tr.dataset.search = [f.key, ...f.aliases].join(' ').toLowerCase();
  });
  replace(body,
    h('p', {}, `${fmt.plural(dictionary.fields.length, 'key')} · root ${dictionary.root}`,
      dictionary.extensions?.length ? ` · extensions ${dictionary.extensions.join(', ')}` : ''),
    t,
    h('h2', {}, 'Versions'),
    versionsTable('Common schema', common),
    extension !== null ? (extension.length ? versionsTable(`Extension of ${tenant}`, extension)
      : h('p', { class: 'muted' }, `${tenant} has no extension: push one with `, h('code', {}, `caravan schema push --tenant ${tenant} FILE.proto`), '.')) : null);
  applyFilter(body, filter.value);
}

function versionsTable(title, versions) {
  return [h('h3', {}, title), table(title, [{ text: 'Version', num: true }, 'Root message', 'Pushed', 'By'],
    versions.slice().reverse().map((v) => [String(v.version), h('code', {}, v.root_message), fmt.time(v.created_at), v.created_by]))];
}

function applyFilter(body, text) {
  const needle = text.trim().toLowerCase();
  for (const tr of body.querySelectorAll('#schema-table tbody tr')) {
    tr.hidden = needle !== '' && !tr.dataset.search.includes(needle);
  }
}
