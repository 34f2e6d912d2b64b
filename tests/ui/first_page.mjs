// How long the Logs page takes to show the first page of results: from submitting a query in
// the query bar to the count, the histogram and the first page of logs being on screen (the
// frame after they are in the page), in headless Chromium (Debian's package) driven by
// playwright-core. A benchmark, not a test: it prints figures and fails only if the page does.
//
// Run by `cargo bench -p caravan --bench ui_first_page`, which starts a release server on the
// search benchmark's data set. Environment: CARAVAN_URL, CARAVAN_TOKEN (required),
// BENCH_TENANT (payments), BENCH_END (the end of the data set, 2026-03-11T00:00:00Z),
// BENCH_RUNS (timed submissions per query, default 20, at most 200; after 2 warm-ups).

import assert from 'node:assert/strict';
import { launch } from './chromium.mjs';

const url = process.env.CARAVAN_URL;
const token = process.env.CARAVAN_TOKEN;
const tenant = process.env.BENCH_TENANT ?? 'payments';
const end = Date.parse(process.env.BENCH_END ?? '2026-03-11T00:00:00Z');
const runs = Math.min(200, Math.max(1, Number(process.env.BENCH_RUNS ?? 20)));
assert.ok(url && token, 'CARAVAN_URL and CARAVAN_TOKEN are required');
assert.ok(Number.isFinite(end), 'BENCH_END must be a date');

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** The representative searches: [label, query, range length before the data set's end]. */
const SEARCHES = [
  ['everything, last 15 minutes', '', 15 * MINUTE],
  ['service:ledger, last 24 hours', 'service:ledger', 24 * HOUR],
  ['bare word "timeout", 3 days', 'timeout', 72 * HOUR],
  ['service:ledger AND http.status:>=500, 24 hours', 'service:ledger AND http.status:>=500', 24 * HOUR],
  ['everything, 3 days', '', 72 * HOUR],
];
const WARMUPS = 2;
const RUN_TIMEOUT_MS = 30_000;

/** `datetime-local` input text of an instant (the browser runs in UTC). */
const local = (ms) => new Date(ms).toISOString().slice(0, 19);

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

const { context, close } = await launch({ timezoneId: 'UTC' });
let failed = false;
try {
  context.setDefaultTimeout(RUN_TIMEOUT_MS);
  const page = context.pages()[0] ?? await context.newPage();
  page.on('pageerror', (error) => { console.error(`[browser] ${error.message}`); failed = true; });

  await page.goto(`${url}/ui/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/#\/overview/);
  const [, , firstSpan] = SEARCHES[0];
  const address = new URLSearchParams({ tenant, q: '', from: new Date(end - firstSpan).toISOString(), to: new Date(end).toISOString() });
  const opened = Date.now();
  await page.goto(`${url}/ui/#/logs?${address}`);
  await page.locator('#hit-count').waitFor();
  console.log(`opening the Logs page on "${SEARCHES[0][0]}" (a shared link): ${Date.now() - opened} ms`);

  console.log(`${runs} timed submissions per search after ${WARMUPS} warm-ups; tenant ${tenant}, data ending ${new Date(end).toISOString()}`);
  console.log('| search | matching | first page p50 | p99 | max | server took_ms p50 |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const [label, query, span] of SEARCHES) {
    const times = [];
    const took = [];
    let total = null;
    for (let run = 0; run < WARMUPS + runs; run++) {
      const result = await page.evaluate(async ({ query, from, to, timeoutMs }) => {
        const input = document.getElementById('log-query');
        const range = document.getElementById('log-range');
        input.value = query;
        range.value = 'absolute';
        document.getElementById('log-from').value = from;
        document.getElementById('log-to').value = to;
        const line = document.getElementById('hit-line');
        const started = performance.now();
        input.form.requestSubmit();
        // Submitting replaces the count with "Searching…" at once; the new count, histogram
        // and hits are put in the page together, then painted in the next frame.
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no results within ${timeoutMs} ms`)), timeoutMs);
          const done = () => {
            if (line.getAttribute('aria-busy') !== 'false') return false;
            const error = document.getElementById('query-error') ?? document.querySelector('.message.error');
            if (error) { clearTimeout(timer); reject(new Error(error.innerText)); return true; }
            if (!document.getElementById('hit-count')) return false;
            clearTimeout(timer);
            observer.disconnect();
            requestAnimationFrame(() => resolve());
            return true;
          };
          const observer = new MutationObserver(done);
          observer.observe(line, { childList: true, subtree: true, attributes: true });
        });
        const elapsed = performance.now() - started;
        const count = document.getElementById('hit-count');
        const shown = document.querySelectorAll('#hits .hit').length;
        const bars = document.querySelectorAll('#histogram canvas').length;
        const tookMs = Number(/· (\d+) ms/.exec(line.textContent)?.[1]);
        return { elapsed, total: Number(count.dataset.total), shown, bars, tookMs };
      }, { query, from: local(end - span), to: local(end), timeoutMs: RUN_TIMEOUT_MS });
      assert.ok(result.bars > 0, `${label}: no histogram`);
      assert.ok(result.total === 0 || result.shown > 0, `${label}: ${result.total} matches but no logs shown`);
      if (run < WARMUPS) continue;
      times.push(result.elapsed);
      took.push(result.tookMs);
      total = result.total;
    }
    times.sort((a, b) => a - b);
    took.sort((a, b) => a - b);
    const ms = (value) => `${Math.round(value)} ms`;
    console.log(`| ${label} | ${total.toLocaleString('en-US')} | ${ms(percentile(times, 50))} | ${ms(percentile(times, 99))} | ${ms(times[times.length - 1])} | ${ms(percentile(took, 50))} |`);
  }
} catch (error) {
  console.error(`first page benchmark failed: ${error.stack ?? error}`);
  failed = true;
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
