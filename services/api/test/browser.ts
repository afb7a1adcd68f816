import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '@wombat/core/platform';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium, which the dashboard tests drive; a clear failure when it is missing. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where the dashboard tests keep their screenshots. */
export const artifacts = path.join(repoRoot, '.wombat', 'artifacts', 'dashboard');

/** A headless chromium, closed at teardown; fails the test file when chromium is not installed. */
export async function launchBrowser(t: { fail(message: string): void; teardown(fn: () => unknown): void }): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); .ci/run does it when it is missing`);
    process.exit(1);
  }
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  return browser;
}
