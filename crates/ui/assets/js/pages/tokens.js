// Tokens (admins): who can call the API, for which tenant or host, and which are revoked.
// Secrets are shown once, by the command that creates a token; the list never has them.

import * as api from '../api.js';
import { h, replace, empty, badge, table } from '../dom.js';
import * as fmt from '../format.js';

export async function render(ctx) {
  const me = await api.whoami();
  const head = h('div', { class: 'page-head' }, h('h1', {}, 'Tokens'));
  if (me.kind !== 'admin') {
    replace(ctx.main, head, empty('Tokens are managed by admins.',
      'Ask one for a token with the scopes you need.'));
    return;
  }
  const tokens = await api.get('/api/v1/tokens');
  const help = h('p', { class: 'muted' }, 'Create one with ',
    h('code', {}, 'caravan token create --name filebeat --tenant payments --scope logs:write'),
    ' (a tenant), ', h('code', {}, 'caravan token create --name agent-dc1-h1 --host dc1-h1'),
    ' (an agent) or ', h('code', {}, '--admin'), '; the secret is printed once. Revoke with ',
    h('code', {}, 'caravan token revoke ID'), '. Deleting a host revokes its agent tokens.');
  if (tokens.length === 0) {
    replace(ctx.main, head, empty('No tokens yet.'), help);
    return;
  }
  replace(ctx.main, head, table('Tokens',
    ['Name', 'Kind', 'For', 'Scopes', 'Created', 'State', 'Id'],
    tokens.map((t) => [
      t.name, t.kind, forWhom(t), t.kind === 'admin' ? 'all' : (t.scopes.join(', ') || 'none'),
      fmt.time(t.created_at),
      t.revoked_at ? badge(`revoked ${fmt.time(t.revoked_at)}`, 'bad') : badge('active', 'ok'),
      h('code', {}, t.id),
    ]), { id: 'tokens-table' }), help);
}

function forWhom(token) {
  if (token.tenant) return h('a', { href: `#/tenants/${api.seg(token.tenant)}` }, `tenant ${token.tenant}`);
  if (token.host) return `host ${token.host}`;
  return 'everything';
}
