// The UI's entry point: routes, the login gate and the top bar.

import * as api from './api.js';
import { route, render } from './router.js';
import { toast } from './dom.js';
import * as login from './pages/login.js';
import * as overview from './pages/overview.js';
import * as services from './pages/services.js';
import * as service from './pages/service.js';
import * as logs from './pages/logs.js';
import * as tenants from './pages/tenants.js';
import * as schema from './pages/schema.js';
import * as tokens from './pages/tokens.js';

// Tells fallback.js that the modules loaded.
window.caravanStarted = true;

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');

route('/login', null, 'Log in', login.render);
route('/overview', 'overview', 'Overview', overview.render);
route('/services', 'services', 'Services', services.renderList);
route('/services/:name', 'services', 'Service', service.render);
route('/logs', 'logs', 'Logs', logs.render);
route('/tenants', 'tenants', 'Tenants', tenants.renderList);
route('/tenants/:name', 'tenants', 'Tenant', tenants.renderTenant);
route('/schema', 'schema', 'Schema', schema.render);
route('/tokens', 'tokens', 'Tokens', tokens.render);

async function show() {
  const onLogin = location.hash.startsWith('#/login');
  if (!api.token() && !onLogin) {
    sessionStorage.setItem('caravan.after-login', location.hash || '#/overview');
    location.hash = '#/login';
    return;
  }
  topbar.hidden = !api.token() || onLogin;
  if (!topbar.hidden) {
    api.whoami().then((me) => {
      document.getElementById('who').textContent = me.kind === 'admin'
        ? 'admin' : `tenant ${me.tenant}`;
    }).catch(() => {});
  }
  await render(main);
}

document.getElementById('logout').addEventListener('click', () => {
  api.clearToken();
  location.hash = '#/login';
});

window.addEventListener('caravan:unauthorized', () => {
  // On the login page, the login form says it itself.
  if (!api.token() || location.hash.startsWith('#/login')) return;
  api.clearToken();
  toast('The token was refused (revoked or wrong): log in again.', 'error');
  location.hash = '#/login';
});

window.addEventListener('hashchange', () => {
  show();
  main.focus({ preventScroll: true });
});
show();
