// Login: a token (admin or tenant), checked with /api/v1/whoami, kept for the browser session.

import * as api from '../api.js';
import { h, replace, message } from '../dom.js';

export async function render({ main }) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', required: true, autocomplete: 'current-password', spellcheck: 'false' });
  const errorBox = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', {},
    h('label', { for: 'token' }, 'API token', input),
    errorBox,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    errorBox.replaceChildren();
    api.setToken(input.value.trim());
    try {
      await api.whoami();
      const next = sessionStorage.getItem('caravan.after-login') || '#/overview';
      sessionStorage.removeItem('caravan.after-login');
      location.hash = next.startsWith('#/login') ? '#/overview' : next;
    } catch (error) {
      api.clearToken();
      const text = error.status === 401
        ? 'This token is not valid (unknown, revoked or mistyped).'
        : error.message;
      errorBox.replaceChildren(message('error', 'Cannot log in', ` ${text}`));
      submit.disabled = false;
      input.focus();
    }
  });
  replace(main, h('div', { class: 'login panel' },
    h('h1', {}, 'Log in to Caravan'),
    h('p', { class: 'muted' },
      'Paste an API token: the admin token (in the server\'s data directory, admin.token, or printed by caravan demo) or a tenant token from ',
      h('code', {}, 'caravan token create'), '. It is kept for this browser tab only.'),
    form));
  input.focus();
}
