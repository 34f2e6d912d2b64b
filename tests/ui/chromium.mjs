// Debian's Chromium, headless, through playwright-core: one launcher for the browser test and
// the first-page bench. A fresh profile (--user-data-dir) each run, removed by `close`.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A persistent context in a new profile; `options` add to or replace the defaults. The
 * flags keep Chromium off the network this machine does not have. */
export async function launch(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'caravan-ui-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 1000 },
    ...options,
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}
