// Overview: alerts first, then zones -> data centers -> hosts with their capacity.

import * as api from '../api.js';
import { h, replace, message, empty, badge, refresher } from '../dom.js';
import * as fmt from '../format.js';

const REFRESH_MS = 5000;

export const HOST_STATE_KIND = { up: 'ok', draining: 'warn', maintenance: '', down: 'bad' };

export async function render(ctx) {
  const content = h('div', {});
  const staleBox = h('div', { 'aria-live': 'polite' });
  replace(ctx.main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview'),
      h('span', { class: 'muted' }, `Refreshed every ${REFRESH_MS / 1000} s`)),
    staleBox,
    content);
  const me = await api.whoami();
  if (!api.can(me, 'fleet:read')) {
    replace(content, message('info', 'This token cannot see the fleet.',
      ' The overview needs an admin token or a tenant token with the fleet:read scope. Logs are under Logs.'));
    return;
  }
  await refresh(content);
  ctx.every(REFRESH_MS, refresher(staleBox, () => refresh(content)));
}

async function refresh(content) {
  const [zones, dataCenters, hosts, services, checks] = await Promise.all([
    api.get('/api/v1/fleet/zones'),
    api.get('/api/v1/fleet/data-centers'),
    api.get('/api/v1/fleet/hosts'),
    api.get('/api/v1/fleet/services'),
    api.get('/api/v1/fleet/checks'),
  ]);
  replace(content,
    alerts(hosts, services, checks),
    zones.length === 0
      ? empty('No zones yet.', 'Create one with ', h('code', {}, 'caravan zone create production'),
        ', then data centers and hosts (or start agents), or run ', h('code', {}, 'caravan demo'), '.')
      : zones.map((zone) => zoneSection(zone, dataCenters, hosts)));
}

function alerts(hosts, services, checks) {
  const items = [];
  for (const { host } of hosts) {
    if (host.state === 'down') {
      items.push(h('li', {}, badge('down', 'bad'), ' Host ', h('strong', {}, host.name),
        ` (${host.data_center}) stopped sending heartbeats ${host.last_heartbeat_ms ? fmt.ago(host.last_heartbeat_ms) : ''}; its instances were rescheduled.`));
    }
  }
  for (const service of services) {
    if (service.pending > 0) {
      items.push(h('li', {}, badge('pending', 'warn'), ' Service ',
        h('a', { href: `#/services/${api.seg(service.name)}` }, service.name),
        `: ${fmt.plural(service.pending, 'instance')} waiting for capacity.`));
    }
  }
  for (const report of checks) {
    for (const text of report.messages) {
      items.push(h('li', {}, badge('check', 'warn'), ' ',
        h('a', { href: `#/services/${api.seg(report.service)}` }, report.service), `: ${text}`));
    }
  }
  return h('section', { class: 'alerts panel', 'aria-labelledby': 'alerts-title' },
    h('h2', { id: 'alerts-title', style: 'margin-top:0' }, 'Alerts'),
    items.length ? h('ul', { id: 'alert-list' }, items)
      : h('p', { class: 'muted' }, 'No alerts: every host is up, nothing is pending, every service passes its placement check.'));
}

function zoneSection(zone, dataCenters, hosts) {
  const dcs = dataCenters.filter((dc) => dc.zone === zone.name);
  return h('section', { class: 'zone', 'aria-label': `Zone ${zone.name}` },
    h('h2', {}, `Zone ${zone.name}`),
    dcs.length === 0
      ? empty(`No data centers in ${zone.name}.`, 'Add one with ', h('code', {}, `caravan dc create NAME --zone ${zone.name}`), '.')
      : h('div', { class: 'dcs' }, dcs.map((dc) => dcCard(dc, hosts.filter(({ host }) => host.data_center === dc.name)))));
}

function dcCard(dc, hosts) {
  return h('article', { class: 'panel dc', 'aria-label': `Data center ${dc.name}` },
    h('h3', { style: 'margin-top:0' }, `Data center ${dc.name}`),
    hosts.length === 0
      ? h('p', { class: 'muted' }, 'No hosts. Start an agent with ', h('code', {}, `caravan agent --data-center ${dc.name} --host-name NAME`), '.')
      : hosts.map(hostRow));
}

function hostRow({ host, allocated, instances }) {
  const labels = Object.entries(host.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
  return h('div', { class: 'host', dataset: { host: host.name } },
    h('div', { class: 'host-head' },
      h('strong', {}, host.name),
      labels ? h('span', { class: 'muted' }, labels) : null,
      h('span', { class: 'muted' }, fmt.plural(instances, 'instance')),
      badge(host.state, HOST_STATE_KIND[host.state] ?? '')),
    h('div', { class: 'bars' },
      bar('CPU', allocated.cpu_millis, host.capacity.cpu_millis, fmt.cpu, host.name),
      bar('Memory', allocated.memory_bytes, host.capacity.memory_bytes, fmt.bytes, host.name),
      bar('Disk', allocated.disk_bytes, host.capacity.disk_bytes, fmt.bytes, host.name)));
}

/** One capacity bar: allocated of total, as an accessible meter. */
export function bar(label, used, total, format, owner) {
  const ratio = total > 0 ? Math.min(1, used / total) : 0;
  const percent = Math.round(ratio * 100);
  const kind = ratio >= 0.95 ? 'full' : ratio >= 0.8 ? 'high' : '';
  return [
    h('span', {}, label),
    h('div', {
      class: `bar ${kind}`, role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': percent,
      'aria-label': `${owner} ${label} allocated`, 'aria-valuetext': `${format(used)} of ${format(total)} (${percent}%)`,
    }, h('span', { style: `width:${percent}%` })),
    h('span', { class: 'muted' }, `${format(used)} / ${format(total)}`),
  ];
}
