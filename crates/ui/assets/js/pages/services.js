// Services: the list (a tenant token sees its tenant's services only).

import * as api from '../api.js';
import { h, replace, message, empty, badge, table } from '../dom.js';
import * as fmt from '../format.js';

export async function renderList(ctx) {
  const me = await api.whoami();
  const head = h('div', { class: 'page-head' }, h('h1', {}, 'Services'));
  if (!api.can(me, 'fleet:read')) {
    replace(ctx.main, head, message('info', 'This token cannot see services.',
      ' Services need an admin token or a tenant token with the fleet:read scope.'));
    return;
  }
  const services = await api.get('/api/v1/fleet/services');
  if (services.length === 0) {
    replace(ctx.main, head, empty('No services yet.',
      'Create one with ', h('code', {}, 'caravan service create NAME --tenant TENANT --templates T1,T2 --groups 2'),
      ' (templates say how to run one member in a data center: ', h('code', {}, 'caravan template create'), ').'));
    return;
  }
  const rows = services.map((s) => [
    h('a', { href: `#/services/${api.seg(s.name)}` }, s.name),
    s.tenant,
    String(s.groups),
    h('span', {}, `${s.running} / ${s.instances} running`),
    s.pending ? badge(`${s.pending} pending`, 'warn') : badge('placed', 'ok'),
    s.templates.join(', '),
    `${fmt.cpu(s.demand.cpu_millis)}, ${fmt.bytes(s.demand.memory_bytes)}`,
  ]);
  replace(ctx.main, head,
    table('Services', ['Service', 'Tenant', { text: 'Groups', num: true }, 'Instances', 'Placement', 'Templates', 'Demand'],
      rows, { id: 'services-table' }));
}
