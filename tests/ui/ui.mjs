// Caravan's web UI in a real browser: headless Chromium (Debian's package) driven by
// playwright-core, against a running `caravan demo` (CARAVAN_URL, CARAVAN_TOKEN). Logs in, sees
// the hosts, opens the service, searches logs (the count must equal the API's), scales the
// service and sees the new instances; screenshots go to SCREENSHOT_DIR.
//
// Run by crates/caravan/tests/integration/ui_browser.rs (`cargo test`), which starts the demo.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { launch } from './chromium.mjs';

const url = process.env.CARAVAN_URL;
const token = process.env.CARAVAN_TOKEN;
const tenantToken = process.env.CARAVAN_TENANT_TOKEN; // of the `shop` tenant
const shots = process.env.SCREENSHOT_DIR ?? 'screenshots';
assert.ok(url && token && tenantToken, 'CARAVAN_URL, CARAVAN_TOKEN and CARAVAN_TENANT_TOKEN are required');
mkdirSync(shots, { recursive: true });

const SERVICE = 'storefront';
const HOSTS = ['dc1-h1', 'dc1-h2', 'dc2-h1', 'dc2-h2', 'stg1-h1'];

async function api(method, path, body) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

const { context, close } = await launch();
const pageErrors = [];
let step = 'start';
let page;
try {
  context.setDefaultTimeout(20_000);
  page = context.pages()[0] ?? await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${step}: ${error.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error') console.error(`[browser] ${msg.text()}`); });
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });

  step = 'login';
  await page.goto(`${url}/ui/`);
  await page.waitForURL(/#\/login$/);
  await page.getByLabel('API token').fill('cvn_not_a_token');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByText('This token is not valid').waitFor();
  await page.getByLabel('API token').fill(token);
  await page.keyboard.press('Enter'); // the form works from the keyboard
  await page.waitForURL(/#\/overview$/);

  step = 'overview: hosts';
  await page.waitForFunction((n) => document.querySelectorAll('[data-host]').length === n, HOSTS.length);
  for (const host of HOSTS) {
    await page.locator(`[data-host="${host}"]`).getByText('up', { exact: true }).waitFor();
  }
  assert.equal(await page.getByRole('meter', { name: 'dc1-h1 CPU allocated' }).count(), 1);
  await page.getByRole('heading', { name: 'Zone production' }).waitFor();
  await page.getByRole('heading', { name: 'Zone staging' }).waitFor();
  await shot('overview');

  step = 'services: list and detail';
  await page.getByRole('link', { name: 'Services', exact: true }).click();
  await page.getByRole('link', { name: SERVICE }).click();
  await page.waitForURL(new RegExp(`#/services/${SERVICE}$`));
  assert.equal(await page.title(), `Service ${SERVICE} · Caravan`);
  await page.waitForFunction(() => document.querySelectorAll('#instances-table [data-instance]').length === 4
    && document.querySelectorAll('#instances-table .badge.ok').length >= 8); // running + healthy
  const layout = await page.locator('#instances-table').innerText();
  assert.match(layout, /Data center dc1/);
  assert.match(layout, /weight 100/);
  await page.locator('#event-list li').first().waitFor();
  await shot('service');

  step = 'logs: count equals the API';
  const query = 'level:ERROR OR http.status:>=500';
  // A closed range ending 2 s ago (the store commits every second), once it holds errors.
  let from; let to; let fromApi;
  for (let attempt = 0; ; attempt += 1) {
    to = new Date(Date.now() - 2000).toISOString();
    from = new Date(Date.now() - 10 * 60_000).toISOString();
    fromApi = await api('POST', '/api/v1/logs/search', { tenants: ['payments'], query, from, to, size: 0 });
    if (fromApi.total > 0) break;
    assert.ok(attempt < 30, 'the log generator sent no errors within 15 s');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const address = new URLSearchParams({ tenant: 'payments', q: query, from, to });
  await page.goto(`${url}/ui/#/logs?${address}`);
  const count = page.locator('#hit-count');
  await count.waitFor();
  assert.equal(Number(await count.getAttribute('data-total')), fromApi.total);
  await page.locator('#histogram canvas').waitFor();
  await page.locator('#hits .hit').first().waitFor();
  const firstHit = page.locator('#hits .hit > button').first();
  await firstHit.click();
  assert.equal(await firstHit.getAttribute('aria-expanded'), 'true');
  await page.locator('#hits .hit table.fields').first().getByText('level', { exact: true }).waitFor();
  await shot('logs');

  step = 'logs: a document with an ignored value is highlighted';
  await page.getByLabel('Query').fill('message:"payment authorised" OR message:"refund issued"');
  await page.getByLabel('Time range').selectOption('now-15m');
  await page.waitForFunction(() => document.querySelector('#hit-count'));
  // The generator sends `duration_ms: "slow"` now and then: find one through the API.
  const ignored = await api('POST', '/api/v1/logs/search', { tenants: ['payments'], query: '', from: 'now-15m', size: 500 });
  const withIgnored = ignored.hits.find((hit) => Array.isArray(hit._source._ignored));
  if (withIgnored) {
    await page.getByLabel('Query').fill(`trace_id:${withIgnored._source.trace_id}`);
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.waitForFunction(() => document.querySelector('#hit-count')?.dataset.total === '1');
    await page.locator('#hits .hit > button').first().click();
    await page.locator('#hits tr.ignored').first().waitFor();
  }

  step = 'logs: query errors at their position';
  await page.getByLabel('Query').fill('level:ERROR AND (');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  const error = page.locator('#query-error');
  await error.waitFor();
  assert.match(await error.innerText(), /position 16/);
  assert.equal(await page.getByLabel('Query').getAttribute('aria-invalid'), 'true');
  // The server's position is in UTF-8 bytes; the selection must still fall on the clause at
  // fault after characters of two, three and four bytes (one of them two UTF-16 units).
  const wide = 'message:"déjà vu → 🚀" AND usrId:1';
  await page.getByLabel('Query').fill(wide);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.waitForFunction(() => /usrId/.test(document.getElementById('query-error')?.innerText ?? ''));
  const selected = await page.getByLabel('Query').evaluate((input) => input.value.slice(input.selectionStart, input.selectionEnd));
  assert.equal(selected, 'usrId:1');
  assert.match(await error.locator('pre').innerText(), /\n {26}\^{7}$/);
  await shot('logs-error');

  step = 'logs: fields and top values, drag to zoom';
  await page.getByLabel('Query').fill('');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#field-list [data-key="level"] button.field').click();
  await page.locator('#field-list [data-key="level"] .top-values li').first().waitFor();
  // Zoom on the last part of the range (where the demo's logs are): fewer or as many logs.
  const before = Number(await page.locator('#hit-count').getAttribute('data-total'));
  const over = page.locator('#histogram .u-over');
  const box = await over.boundingBox();
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width - 1, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => document.getElementById('log-range').value === 'absolute'
    && !document.getElementById('log-from').closest('[hidden]'));
  await page.waitForFunction(() => document.getElementById('hit-line').getAttribute('aria-busy') === 'false'
    && document.getElementById('hit-count'));
  const zoomed = Number(await page.locator('#hit-count').getAttribute('data-total'));
  assert.ok(zoomed > 0 && zoomed <= before + 200, `zoomed: ${zoomed} logs, before: ${before}`);
  await shot('logs-zoomed');

  step = 'logs: zoom with the keyboard, then zoom out';
  const searched = () => page.waitForFunction(() => document.getElementById('hit-line').getAttribute('aria-busy') === 'false'
    && document.getElementById('hit-count'));
  const fromBefore = await page.locator('#log-from').inputValue();
  await page.locator('#histogram').focus();
  await page.keyboard.press('End');
  await page.keyboard.press('Shift+ArrowLeft');
  await page.keyboard.press('Shift+ArrowLeft');
  assert.match(await page.locator('#histogram-status').innerText(), /logs?\. Enter zooms in\./);
  await page.keyboard.press('Enter');
  await page.waitForFunction((before) => document.getElementById('log-from').value !== before, fromBefore);
  await searched();
  const keyed = Number(await page.locator('#hit-count').getAttribute('data-total'));
  assert.ok(keyed <= zoomed + 200, `keyboard zoom: ${keyed} logs, before: ${zoomed}`);
  const fromKeyed = await page.locator('#log-from').inputValue();
  await page.getByRole('button', { name: 'Zoom out' }).click();
  await page.waitForFunction((before) => document.getElementById('log-from').value < before, fromKeyed);
  await searched();
  const out = Number(await page.locator('#hit-count').getAttribute('data-total'));
  assert.ok(out >= keyed, `zoomed out: ${out} logs, before: ${keyed}`);

  step = 'logs: live tail marks new logs';
  await page.getByLabel('Query').fill('');
  await page.getByLabel(/Live tail/).check();
  await page.locator('#hits .hit.new').first().waitFor({ timeout: 15_000 });
  await page.getByLabel(/Live tail/).uncheck();

  step = 'scale the service and see the new instances';
  await page.goto(`${url}/ui/#/services/${SERVICE}`);
  await page.locator('#instances-table [data-instance]').first().waitFor();
  await page.getByRole('button', { name: 'Scale…' }).click();
  const dialog = page.getByRole('dialog', { name: `Scale ${SERVICE}` });
  await dialog.getByLabel('Number of groups').fill('3');
  await dialog.getByRole('button', { name: 'Scale', exact: true }).click();
  await dialog.waitFor({ state: 'detached' });
  await page.waitForFunction(() => document.querySelectorAll('#instances-table [data-instance]').length === 6);
  const view = await api('GET', `/api/v1/fleet/services/${SERVICE}`);
  assert.equal(view.groups.length, 3);
  const ids = view.groups.flatMap((g) => g.instances.map((i) => `i-${i.id}`));
  for (const id of ids) await page.locator(`#instances-table [data-instance="${id}"]`).waitFor();
  await page.waitForFunction(() => [...document.querySelectorAll('#instances-table [data-instance]')]
    .every((el) => el.textContent.includes('running')), null, { timeout: 30_000 });
  await shot('service-scaled');

  step = 'migrate: the dialog can be cancelled from the keyboard';
  await page.getByRole('button', { name: 'Migrate…' }).click();
  const migrateDialog = page.getByRole('dialog', { name: `Migrate ${SERVICE}` });
  await migrateDialog.getByLabel('Target host').waitFor();
  await page.keyboard.press('Escape');
  await migrateDialog.waitFor({ state: 'detached' });

  step = 'drain a host: its instances move, make before break';
  await page.getByRole('button', { name: 'Drain a host…' }).click();
  const drainDialog = page.getByRole('dialog', { name: 'Drain a host' });
  await drainDialog.getByLabel('Host').selectOption('dc1-h2');
  await drainDialog.getByRole('button', { name: 'Drain', exact: true }).click();
  await drainDialog.waitFor({ state: 'detached' });
  await page.waitForFunction(() => {
    const members = [...document.querySelectorAll('#instances-table [data-instance]')];
    return members.length === 6 && members.every((el) => !el.textContent.includes('host dc1-h2')
      && el.textContent.includes('running'));
  }, null, { timeout: 40_000 });
  const drained = await api('GET', '/api/v1/fleet/hosts/dc1-h2');
  assert.equal(drained.host.state, 'draining');
  assert.equal(drained.instances.length, 0);
  await page.goto(`${url}/ui/#/overview`);
  await page.locator('[data-host="dc1-h2"]').getByText('draining', { exact: true }).waitFor();

  step = 'tenants and schema';
  await page.goto(`${url}/ui/#/tenants`);
  await page.getByRole('link', { name: 'payments' }).click();
  await page.locator('#usage-table').waitFor();
  assert.match(await page.locator('#usage-table').innerText(), /payment_provider/);
  await shot('tenant');
  await page.getByRole('link', { name: 'Schema', exact: true }).first().click();
  await page.locator('#schema-table').waitFor();
  await page.getByLabel('Filter keys').fill('user_id');
  await page.waitForFunction(() => [...document.querySelectorAll('#schema-table tbody tr')].filter((tr) => !tr.hidden).length === 1);
  await shot('schema');

  step = 'tokens';
  await page.getByRole('link', { name: 'Tokens', exact: true }).click();
  await page.locator('#tokens-table').waitFor();
  const tokenList = await page.locator('#tokens-table').innerText();
  assert.match(tokenList, /host dc1-h1/); // the demo's agent tokens
  assert.match(tokenList, /tenant shop/);
  assert.doesNotMatch(tokenList, /cvn_/); // never a secret
  await shot('tokens');

  step = 'logout';
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL(/#\/login$/);

  step = 'a tenant token sees its own tenant only';
  await page.getByLabel('API token').fill(tenantToken);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/#\/overview$/);
  await page.getByText('tenant shop').waitFor();
  await page.locator('[data-host="dc1-h1"]').waitFor(); // fleet:read shows the inventory
  await page.getByRole('link', { name: 'Services', exact: true }).click();
  await page.getByRole('link', { name: SERVICE }).waitFor();
  await page.getByRole('link', { name: 'Logs', exact: true }).click();
  const tenantSelect = page.getByLabel('Tenant');
  assert.deepEqual(await tenantSelect.locator('option').allTextContents(), ['shop']);
  await page.locator('#hit-count').waitFor();
  await page.getByRole('link', { name: 'Tenants', exact: true }).click();
  await page.waitForURL(/#\/tenants\/shop$/);
  await page.getByRole('heading', { name: 'Tenant shop' }).waitFor();
  await page.goto(`${url}/ui/#/tenants/payments`);
  await page.getByText(/not found/).waitFor(); // another tenant does not exist for it
  await page.getByRole('link', { name: 'Tokens', exact: true }).click();
  await page.getByText('Tokens are managed by admins.').waitFor();
  await shot('tenant-token');

  assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
  console.log('ui browser test: ok');
} catch (error) {
  console.error(`ui browser test failed at step "${step}": ${error.stack ?? error}`);
  if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  if (pageErrors.length) console.error(`page errors:\n${pageErrors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await close();
}
