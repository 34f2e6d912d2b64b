// One service: its groups laid out by data center with the registry's view of each instance,
// the actions (scale, drain a host, migrate) behind confirmations, and its event timeline.

import * as api from '../api.js';
import { h, replace, message, empty, badge, table, toast, refresher } from '../dom.js';
import { confirmAction } from '../dialog.js';
import * as fmt from '../format.js';

const REFRESH_MS = 2000;
const STATE_KIND = { running: 'ok', placed: 'warn', pending: 'bad', stopping: '' };

export async function render(ctx) {
  const name = ctx.params.name;
  const path = `/api/v1/fleet/services/${api.seg(name)}`;
  const me = await api.whoami();
  const layout = h('section', { 'aria-labelledby': 'layout-title' });
  const checkBox = h('div', {});
  const timeline = h('section', { 'aria-labelledby': 'events-title' });
  const summary = h('p', { class: 'muted', id: 'service-summary' });
  const staleBox = h('div', { 'aria-live': 'polite' });
  let view = await api.get(path);

  const refresh = async () => {
    const [fresh, registry, events, check] = await Promise.all([
      api.get(path),
      api.get(`${path}/endpoints`).catch(() => ({ endpoints: [] })),
      api.get(`/api/v1/fleet/events?service=${api.seg(name)}&limit=50`).catch(() => []),
      api.get(`${path}/check`).catch(() => null),
    ]);
    if (!ctx.live()) return;
    view = fresh;
    const instances = view.groups.flatMap((g) => g.instances);
    const running = instances.filter((i) => i.state.state === 'running').length;
    summary.textContent = `Tenant ${view.service.tenant} · ${fmt.plural(view.groups.length, 'group')} · `
      + `${running} of ${fmt.plural(instances.length, 'instance')} running · templates ${templates(view).join(', ')}`;
    replace(layout, h('h2', { id: 'layout-title' }, 'Instances by group and data center'), groupsTable(view, registry));
    replace(checkBox, check && check.messages.length
      ? message('warn', 'Placement check', check.messages.map((m) => h('div', {}, m)))
      : null);
    replace(timeline, h('h2', { id: 'events-title' }, 'Events'), eventList(events));
  };

  const actions = h('div', { class: 'actions' },
    api.can(me, 'fleet:write') ? [
      h('button', { type: 'button', id: 'scale', onclick: () => scale(path, view, refresh) }, 'Scale…'),
      h('button', { type: 'button', class: 'secondary', id: 'migrate', onclick: () => migrate(path, view, me, refresh) }, 'Migrate…'),
    ] : null,
    me.kind === 'admin'
      ? h('button', { type: 'button', class: 'secondary', id: 'drain', onclick: () => drain(view, refresh) }, 'Drain a host…')
      : null);

  replace(ctx.main,
    h('p', {}, h('a', { href: '#/services' }, '← All services')),
    h('div', { class: 'page-head' }, h('h1', {}, `Service ${name}`), actions),
    summary, staleBox, checkBox, layout, timeline);
  await refresh();
  ctx.every(REFRESH_MS, refresher(staleBox, refresh));
}

/** Rows: groups; columns: the data centers the service's members run in. */
function groupsTable(view, registry) {
  const byInstance = new Map((registry.endpoints ?? []).map((e) => [String(e.instance), e]));
  const dcs = [...new Set([...view.service.members.map((m) => m.data_center).filter(Boolean),
    ...view.groups.flatMap((g) => g.instances.map((i) => i.data_center))])];
  if (view.groups.length === 0) {
    return empty('This service has no groups.', 'Scale it to 1 or more groups to run instances.');
  }
  const rows = view.groups.map((group) => [
    h('span', {}, `Group ${group.group}`),
    ...dcs.map((dc) => {
      const here = group.instances.filter((i) => i.data_center === dc);
      return here.length ? here.map((i) => member(i, byInstance.get(String(i.id)))) : h('span', { class: 'muted' }, '—');
    }),
  ]);
  return table('Instances by group and data center', ['Group', ...dcs.map((dc) => `Data center ${dc}`)], rows,
    { class: 'layout-grid', id: 'instances-table' });
}

function member(instance, endpoint) {
  const state = instance.state.state;
  const health = endpoint
    ? (endpoint.draining ? badge('draining', 'warn') : endpoint.healthy ? badge('healthy', 'ok') : badge('unhealthy', 'bad'))
    : null;
  return h('div', { class: 'member', dataset: { instance: `i-${instance.id}` } },
    h('span', {}, h('strong', { class: 'mono' }, `i-${instance.id}`), ' ', badge(state, STATE_KIND[state] ?? ''), ' ', health),
    h('span', {}, 'host ', instance.host ?? h('em', {}, 'none')),
    h('span', { class: 'mono' }, address(instance, endpoint)),
    endpoint && instance.ip && endpoint.ip !== instance.ip
      ? h('span', { class: 'muted' }, `lease ${instance.ip}`) : null,
    endpoint ? h('span', {}, `weight ${endpoint.weight}`) : null,
    instance.state.reason ? h('span', { class: 'muted' }, instance.state.reason) : null);
}

/** Where the instance is reached: the registry's address (its agent may advertise one other
 * than the lease), with the port its agent gave it. */
function address(instance, endpoint) {
  const ip = endpoint?.ip ?? instance.ip;
  const port = endpoint?.port ?? instance.port;
  if (!ip) return 'no address';
  const host = ip.includes(':') ? `[${ip}]` : ip;
  return port ? `${host}:${port}` : ip;
}

/** The service's templates, one per member. */
function templates(view) {
  return view.service.members.map((m) => m.template);
}

function eventList(events) {
  if (!events.length) return h('p', { class: 'muted' }, 'No events yet.');
  return h('ol', { class: 'timeline', id: 'event-list' }, events.map((e) => h('li', {},
    h('time', { datetime: e.at }, fmt.time(e.at)),
    h('span', {}, badge(e.kind), e.by ? h('span', { class: 'muted' }, ` by ${e.by}`) : null),
    h('span', {}, e.message))));
}

async function scale(path, view, refresh) {
  const input = h('input', { type: 'number', id: 'scale-groups', name: 'groups', min: 0, max: 1000, required: true, value: String(view.groups.length) });
  const ran = await confirmAction({
    title: `Scale ${view.service.name}`,
    body: h('p', {}, `It runs ${fmt.plural(view.groups.length, 'group')} of ${fmt.plural(templates(view).length, 'member')} (one per template: ${templates(view).join(', ')}). Whole groups are added or removed.`),
    fields: h('label', { for: 'scale-groups' }, 'Number of groups', input),
    confirmLabel: 'Scale',
    onConfirm: async () => {
      const groups = Number(input.value);
      if (!Number.isInteger(groups) || groups < 0) throw new Error('Enter a whole number of groups.');
      await api.patch(path, { groups });
    },
  });
  if (ran) { toast(`Scaled ${view.service.name} to ${input.value} groups`); await refresh(); }
}

async function migrate(path, view, me, refresh) {
  const check = await api.get(`${path}/check`);
  const hosts = me.kind === 'admin' || api.can(me, 'fleet:read')
    ? await api.get('/api/v1/fleet/hosts').catch(() => []) : [];
  const select = h('select', { id: 'migrate-host', name: 'to_host' },
    h('option', { value: '' }, 'Where placement decides'),
    hosts.filter(({ host }) => host.state === 'up').map(({ host }) => h('option', { value: host.name }, `${host.name} (${host.data_center})`)));
  const ran = await confirmAction({
    title: `Migrate ${view.service.name}`,
    body: [
      h('p', {}, 'Migrating moves the instances the placement check flags, make before break: each replacement is healthy before the old instance stops.'),
      check.messages.length ? h('ul', {}, check.messages.map((m) => h('li', {}, m)))
        : h('p', { class: 'muted' }, 'The placement check finds nothing to fix now; with a target host, instances move there.'),
    ],
    fields: h('label', { for: 'migrate-host' }, 'Target host', select),
    confirmLabel: 'Migrate',
    onConfirm: async () => {
      const result = await api.post(`${path}/migrate`, select.value ? { to_host: select.value } : {});
      const moves = result?.moves?.length ?? 0;
      toast(moves ? `Started ${fmt.plural(moves, 'move')}` : 'Nothing to move');
    },
  });
  if (ran) await refresh();
}

async function drain(view, refresh) {
  const hostsHere = [...new Set(view.groups.flatMap((g) => g.instances.map((i) => i.host)).filter(Boolean))].sort();
  const select = h('select', { id: 'drain-host', name: 'host', required: true },
    hostsHere.map((name) => h('option', { value: name }, name)));
  const ran = await confirmAction({
    title: 'Drain a host',
    body: h('p', {}, 'Draining moves every instance off the host (of every service, not only this one), one at a time, each replacement healthy before the old instance stops. The host then takes no new instances.'),
    fields: h('label', { for: 'drain-host' }, 'Host', select),
    confirmLabel: 'Drain',
    danger: true,
    onConfirm: async () => {
      if (!select.value) throw new Error('This service runs on no host.');
      await api.post(`/api/v1/fleet/hosts/${api.seg(select.value)}/drain`);
      toast(`Draining ${select.value}`);
    },
  });
  if (ran) await refresh();
}
