import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { chromium, type Browser } from 'playwright-core';
import t from 'tap';
import { ADMIN_TOKEN, serviceStarter, startTestApi } from './helpers.ts';

/**
 * The dashboard's backfill form in a real browser against a running system (the api in
 * process, the scheduler-engine and a worker as child processes): Preview lists every
 * occurrence without writing anything, Start records the backfill, and its run page follows
 * it to completed.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  t.fail(`${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)`);
  process.exit(1);
}
const api = await startTestApi(t);
const startService = serviceStarter(t, api.database.url);
startService('worker', { WORKER_HISTORY_FLUSH_MS: '20' });
startService('scheduler-engine', { ENGINE_HEARTBEAT_INTERVAL_MS: '500', ENGINE_HELD_RUN_CHECK_MS: '100', ENABLE_SCHEDULER: 'false' });
const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
t.teardown(() => browser.close());

const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const date = (i: number) => new Date(today + i * DAY_MS).toISOString().slice(0, 10);

t.test('the backfill form previews every occurrence, then starts the backfill, followed on its run page', async (t) => {
  const def = validateScheduleInput({ name: 'ui-backfill', job: 'canary', cron: '0 0 * * *', timezone: 'UTC', params: { sleep_ms: 20 } });
  if (!def.ok) throw new Error(def.problems.join('; '));
  const s = await insertSchedule(api.database.db, def.value);
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  t.teardown(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${api.url}/`);
  await page.evaluate((token) => sessionStorage.setItem('wombat-token', token), ADMIN_TOKEN);
  await page.goto(`${api.url}/#/schedules`);
  await page.click('tr[data-schedule=ui-backfill] button:text-is("Backfill")');
  await page.fill('[data-testid=backfill-form] input[name=from]', date(-4));
  await page.fill('[data-testid=backfill-form] input[name=to]', date(-5));
  await page.click('text=Preview');
  t.match(await page.textContent('[data-testid=backfill-form] .error-box'), /to .* must be later than from/, 'a bad range says what to fix');

  await page.fill('[data-testid=backfill-form] input[name=to]', date(-1));
  await page.fill('[data-testid=backfill-form] input[name=concurrency]', '2');
  await page.click('text=Preview');
  await page.waitForSelector('[data-testid=backfill-plan]');
  t.equal(await page.locator('[data-testid=backfill-plan] tr[data-occurrence]').count(), 3, 'one row per occurrence');
  t.match(await page.textContent('[data-testid=backfill-summary]'), /3 occurrence\(s\): 3 to run, 0 skipped/);
  t.match(await page.textContent(`tr[data-occurrence="${date(-4)}T00:00:00.000Z"]`), new RegExp(`"period":\\{"from":"${date(-5)}T00:00:00.000Z","to":"${date(-4)}T00:00:00.000Z"\\}`));
  const runs = await api.database.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs`;
  t.equal(runs[0]!.n, 0, 'the preview recorded nothing');

  await page.click('text=Start backfill');
  await page.click('[data-testid=message] a');
  await page.waitForSelector('[data-testid=run-state]');
  const deadline = Date.now() + 30_000;
  while (!/completed/.test((await page.textContent('[data-testid=run-state]')) ?? '') && Date.now() < deadline) await sleep(100);
  t.match(await page.textContent('[data-testid=run-state]'), /completed/, 'the backfill run completed');
  t.match(await page.textContent('[data-testid=run]'), /3\/3 done, 0 failed/);
  const kids = await api.database.sql<{ state: string }[]>`select state from wombat.runs where parent_id is not null and schedule_id = ${s.id}`;
  t.same(kids.map((k) => k.state), ['completed', 'completed', 'completed']);
  t.same(errors, [], 'no script error on the page');
});
