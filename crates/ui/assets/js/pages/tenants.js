// Tenants: the list, and one tenant's retention, quotas and log usage per day.

import * as api from '../api.js';
import { h, replace, empty, badge, table } from '../dom.js';
import * as fmt from '../format.js';

const USAGE_DAYS = 14;

export async function renderList(ctx) {
  const me = await api.whoami();
  if (me.kind !== 'admin') {
    location.replace(`#/tenants/${api.seg(me.tenant)}`);
    return;
  }
  const tenants = await api.get('/api/v1/tenants');
  const head = h('div', { class: 'page-head' }, h('h1', {}, 'Tenants'));
  if (tenants.length === 0) {
    replace(ctx.main, head, empty('No tenants yet.', 'Create one with ',
      h('code', {}, 'caravan tenant create payments --display-name "Payments team"'), '.'));
    return;
  }
  replace(ctx.main, head, table('Tenants',
    ['Tenant', 'Display name', { text: 'Retention', num: true }, { text: 'Daily log quota', num: true }, 'Created'],
    tenants.map((t) => [
      h('a', { href: `#/tenants/${api.seg(t.name)}` }, t.name), t.display_name,
      fmt.plural(t.retention_days, 'day'), t.daily_quota_bytes ? fmt.bytes(t.daily_quota_bytes) : 'none',
      fmt.time(t.created_at),
    ]), { id: 'tenants-table' }));
}

export async function renderTenant(ctx) {
  const name = ctx.params.name;
  const me = await api.whoami();
  const [tenant, usage, quota] = await Promise.all([
    api.get(`/api/v1/tenants/${api.seg(name)}`),
    api.get(`/api/v1/tenants/${api.seg(name)}/logs/usage?days=${USAGE_DAYS}`),
    api.can(me, 'fleet:read') ? api.get(`/api/v1/fleet/quotas/${api.seg(name)}`).catch(() => null) : null,
  ]);
  replace(ctx.main,
    me.kind === 'admin' ? h('p', {}, h('a', { href: '#/tenants' }, '← All tenants')) : null,
    h('div', { class: 'page-head' }, h('h1', {}, `Tenant ${tenant.name}`),
      h('a', { href: `#/schema?tenant=${api.seg(name)}` }, 'Schema'),
      h('a', { href: `#/logs?tenant=${api.seg(name)}` }, 'Logs')),
    h('p', { class: 'muted' }, tenant.display_name),
    h('section', { class: 'panel', 'aria-labelledby': 'limits-title' },
      h('h2', { id: 'limits-title', style: 'margin-top:0' }, 'Retention and quotas'),
      table('Retention and quotas', ['Setting', 'Value'], [
        ['Log retention', `${fmt.plural(tenant.retention_days, 'day')} (older daily partitions are deleted)`],
        ['Daily log quota', tenant.daily_quota_bytes ? `${fmt.bytes(tenant.daily_quota_bytes)} accepted per UTC day` : 'none'],
        ...quotaRows(quota),
      ]),
      me.kind === 'admin' ? h('p', { class: 'muted' }, 'Change them with ',
        h('code', {}, `caravan tenant update ${name} --retention-days N --daily-quota-bytes B`), ' and ',
        h('code', {}, `caravan quota set ${name} --cpu 8 --memory 32GiB --disk 500GiB`), '.') : null),
    h('section', { 'aria-labelledby': 'usage-title' },
      h('h2', { id: 'usage-title' }, `Log usage, last ${USAGE_DAYS} days (UTC)`),
      usageTable(usage)));
}

function quotaRows(quota) {
  if (!quota) return [];
  const row = (label, used, limit, format) => [`Fleet ${label}`,
    limit === undefined ? `${format(used)} used, no quota` : `${format(used)} of ${format(limit)}`];
  const limits = quota.limits ?? {};
  return [
    row('CPU', quota.usage.cpu_millis, limits.cpu_millis, fmt.cpu),
    row('memory', quota.usage.memory_bytes, limits.memory_bytes, fmt.bytes),
    row('disk', quota.usage.disk_bytes, limits.disk_bytes, fmt.bytes),
  ];
}

function usageTable(days) {
  const active = days.filter((d) => d.documents_received > 0 || d.bytes_stored > 0);
  if (active.length === 0) {
    return empty('No logs received in this period.', 'Ship logs to ', h('code', {}, 'POST /_bulk'),
      ' with an index starting with the tenant name, using a token with logs:write.');
  }
  return table('Log usage per day',
    ['Day', { text: 'Documents', num: true }, { text: 'Bytes accepted', num: true }, { text: 'Stored', num: true },
      { text: 'Coerced', num: true }, { text: 'With ignored values', num: true }, 'Rejected', 'Top unknown keys'],
    active.map((d) => [
      d.day, fmt.count(d.documents_accepted), fmt.bytes(d.bytes_accepted), fmt.bytes(d.bytes_stored),
      fmt.count(d.documents_coerced),
      d.documents_with_ignored ? badge(`${fmt.count(d.documents_with_ignored)} (${fmt.count(d.ignored_values)} values)`, 'warn') : '0',
      Object.entries(d.rejected ?? {}).map(([reason, n]) => h('div', {}, `${reason}: ${fmt.count(n)}`)),
      unknownKeys(d),
    ]), { id: 'usage-table' });
}

function unknownKeys(day) {
  const keys = Object.entries(day.unknown_keys ?? {}).sort((a, b) => b[1] - a[1]).slice(0, 5);
  if (!keys.length) return h('span', { class: 'muted' }, 'none');
  return [keys.map(([key, n]) => h('div', {}, h('code', {}, key), ` ${fmt.count(n)}`)),
    day.unknown_keys_other ? h('div', { class: 'muted' }, `+ ${fmt.count(day.unknown_keys_other)} others`) : null];
}

