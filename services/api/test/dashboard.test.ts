import { readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '@wombat/core/platform';
import { JOB_TYPES } from '@wombat/core/jobs';
import { publishRun, RUN_STATES, RUN_TRIGGERS } from '@wombat/core/runs';
import type { Browser, Page } from 'playwright-core';
import t from 'tap';
import { artifacts, launchBrowser } from './browser.ts';
import { ADMIN_TOKEN, READ_TOKEN, serviceStarter, startTestApi, unknownMarketUpbit } from './helpers.ts';

/**
 * The dashboard in a real browser (Debian's chromium) against a running system: the
 * api in process, the real scheduler-engine and worker as child processes.
 * Screenshots of the main pages are kept under .wombat/artifacts/dashboard.
 */
const browser: Browser = await launchBrowser(t);
const api = await startTestApi(t, { auth: { reads: 'token' } });

const startService = serviceStarter(t, api.database.url);
const upbitUrl = await unknownMarketUpbit(t);
startService('worker', { STORAGE: 'postgres', WORKER_HISTORY_FLUSH_MS: '20', UPBIT_BASE_URL: upbitUrl });
startService('scheduler-engine', { ENGINE_HEARTBEAT_INTERVAL_MS: '500', ENABLE_SCHEDULER: 'false' });

// Script errors of every page; each test ends by checking that its pages had none.
const pageErrors: string[] = [];
const noPageErrors = (t: { same(a: unknown, b: unknown, m: string): void }) => t.same(pageErrors.splice(0), [], 'no script error on the page');

async function openPage(t: { teardown(fn: () => unknown): void }, token: string | null): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  t.teardown(() => context.close());
  await page.goto(`${api.url}/`);
  if (token !== null) {
    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
  }
  return page;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

t.test('with reads behind a token the page asks for one, and refuses a wrong one', async (t) => {
  const page = await openPage(t, null);
  await page.waitForSelector('input[name=token]');
  t.match(await page.textContent('body'), /needs a token to read/);
  await page.fill('input[name=token]', 'not-the-token');
  await page.click('button[type=submit]');
  await page.waitForSelector('text=That token is not valid');
  t.equal(await page.evaluate(() => sessionStorage.getItem('wombat-token')), null, 'a refused token is not kept');
  noPageErrors(t);
});

t.test('the overview shows engines, workers, queues and thresholds from the running system', async (t) => {
  const page = await openPage(t, ADMIN_TOKEN);
  await page.waitForSelector('[data-testid=engines-alive]');
  // The engine and the worker heartbeat within a second or two of starting.
  await page.waitForSelector('[data-testid=engines-alive] .value:text-is("1")', { timeout: 30_000 });
  t.equal(await page.getAttribute('[data-testid=engines-alive]', 'data-level'), 'ok');
  const queues = await page.textContent('[data-testid=queues]');
  for (const q of ['collect-symbols', 'fetch-candles', 'canary', 'backtest']) t.match(queues, q, `queue ${q} listed`);
  // The worker runs every queue with the default loops and batch sizes.
  await page.waitForSelector('[data-testid=worker-queues]');
  const workerQueues = await page.textContent('[data-testid=worker-queues]');
  t.match(workerQueues, /\bfetch-candles 4×1\b/, 'each queue with its fetch loops × batch size');
  t.match(workerQueues, /\bcanary 4×500\b/);
  t.match(await page.textContent('[data-testid=workers] tr'), /queues \(loops × batch\)/);
  t.equal(await page.getAttribute('[data-testid=dead-letters]', 'data-level'), 'ok', 'no dead letters yet: normal');
  // The database beneath: its size, connections against the server's limit, its largest tables.
  await page.waitForSelector('[data-testid=db-connections]');
  t.match(await page.textContent('[data-testid=db-connections] .value'), /^\d+ \/ \d+$/, "connections used of the server's max_connections");
  t.match(await page.textContent('[data-testid=db-size] .value'), /^\d+ MiB/);
  t.match(await page.textContent('[data-testid=db-tables]'), /\b(wombat|pgboss)\.\w+/, 'the largest tables');
  t.equal(await page.textContent('[data-testid=role]').then((s) => s?.trim().startsWith('admin')), true);
  await page.screenshot({ path: path.join(artifacts, 'overview.png'), fullPage: true });
  noPageErrors(t);
});

t.test('an admin creates a schedule through the form, sees its preview and a field error, runs it now and watches it complete', async (t) => {
  const page = await openPage(t, ADMIN_TOKEN);
  await page.click('a[href="#/schedules"]');
  await page.click('text=New schedule');
  await page.fill('[data-testid=schedule-form] input[name=name]', 'dashboard-canary');
  await page.selectOption('[data-testid=schedule-form] select[name=job]', 'canary');
  // A bad cron pattern and a bad zone: the preview and the save both say what is wrong, next to the fields.
  await page.fill('[data-testid=schedule-form] input[name=cron]', '0 9 * *');
  await page.fill('[data-testid=schedule-form] input[name=timezone]', 'Mars/Olympus');
  await page.waitForSelector('[data-testid=preview] .field-error');
  await page.click('text=Create schedule');
  await page.waitForSelector('[data-error-for=trigger]');
  t.match(await page.textContent('[data-error-for=trigger]'), /cron "0 9 \* \*" has 4 fields/);
  t.match(await page.textContent('[data-error-for=timezone]'), /not an IANA time zone/);
  t.equal((await api.call('GET', '/api/schedules')).body.schedules.some((s: { name: string }) => s.name === 'dashboard-canary'), false, 'nothing saved');

  await page.fill('[data-testid=schedule-form] input[name=cron]', '0 9 * * 1-5');
  await page.fill('[data-testid=schedule-form] input[name=timezone]', 'Europe/Berlin');
  await page.waitForSelector('[data-testid=preview] li:nth-child(5)');
  const preview = await page.$$eval('[data-testid=preview] li', (lis) => lis.map((li) => li.textContent ?? ''));
  const expected = (await api.call('POST', '/api/schedules/preview?count=5', { body: { cron: '0 9 * * 1-5', timezone: 'Europe/Berlin' } })).body.occurrences as string[];
  t.equal(preview.length, 5);
  preview.forEach((line, i) => {
    t.match(line, /09:00:00 Europe\/Berlin/, 'local time in the schedule zone');
    t.match(line, `${expected[i]!.slice(0, 19).replace('T', ' ')}Z`, 'and the same instant in UTC as the api computes');
  });
  await page.screenshot({ path: path.join(artifacts, 'schedule-form.png'), fullPage: true });
  await page.click('text=Create schedule');
  await page.waitForSelector('tr[data-schedule=dashboard-canary]');
  const stored = (await api.call('GET', '/api/schedules')).body.schedules.find((s: { name: string }) => s.name === 'dashboard-canary');
  t.equal(stored.cron, '0 9 * * 1-5');
  t.equal(stored.timezone, 'Europe/Berlin');

  await page.click('tr[data-schedule=dashboard-canary] >> text=Run now');
  await page.waitForSelector('[data-testid=message] a');
  await page.screenshot({ path: path.join(artifacts, 'schedules.png'), fullPage: true });
  await page.click('[data-testid=message] a');
  // The run page follows the run without a reload, to its end.
  await page.waitForSelector('[data-testid=run-state] [data-state=completed]', { timeout: 30_000 });
  const runId = page.url().split('#/runs/')[1]!;
  const run = (await api.call('GET', `/api/runs/${runId}`)).body;
  t.equal(run.state, 'completed');
  t.equal(run.schedule_id, stored.id, 'the run belongs to the schedule');
  t.equal(await page.getAttribute('[data-testid=progress]', 'data-progress'), String(run.progress));
  await page.screenshot({ path: path.join(artifacts, 'run.png'), fullPage: true });

  await page.click('text=Schedules');
  await page.click('tr[data-schedule=dashboard-canary] >> text=Pause');
  await until('paused', async () => ((await api.call('GET', `/api/schedules/${stored.id}`)).body.status === 'paused' ? true : undefined));
  t.pass('pause went through the api');
  noPageErrors(t);
});

t.test('the runs page filters by state and job', async (t) => {
  const page = await openPage(t, ADMIN_TOKEN);
  await page.goto(`${api.url}/ui/#/runs`);
  await page.waitForSelector('[data-testid=runs] tr[data-run]');
  await page.selectOption('select[name=state]', 'completed');
  await page.selectOption('select[name=job]', 'backtest');
  await until('no backtest runs shown', async () => ((await page.locator('[data-testid=runs] tr[data-run]').count()) === 0 ? true : undefined), 10_000);
  await page.selectOption('select[name=job]', 'canary');
  await page.waitForSelector('[data-testid=runs] tr[data-run]');
  const states = await page.$$eval('[data-testid=runs] tr[data-run] [data-state]', (els) => els.map((e) => e.getAttribute('data-state')));
  t.ok(states.length > 0);
  t.ok(states.every((s) => s === 'completed'), 'only completed runs shown');
  await page.screenshot({ path: path.join(artifacts, 'runs.png'), fullPage: true });
  noPageErrors(t);
});

t.test('the runs page pages back through older runs and forward again', async (t) => {
  await api.database.sql`
    insert into wombat.runs (id, job, trigger, state, created_at, started_at, finished_at)
    select gen_random_uuid(), 'canary', 'task', 'completed', now() - make_interval(hours => 2, secs => i), now() - make_interval(hours => 2, secs => i), now() - make_interval(hours => 2, secs => i)
    from generate_series(1, 230) i`;
  const page = await openPage(t, ADMIN_TOKEN);
  await page.goto(`${api.url}/ui/#/runs`);
  await page.waitForSelector('[data-testid=runs] tr[data-run]');
  const ids = () => page.$$eval('[data-testid=runs] tr[data-run]', (rows) => rows.map((r) => r.getAttribute('data-run')!));
  const first = await ids();
  t.equal(first.length, 100, 'a page of 100');
  t.ok(await page.isDisabled('[data-testid=runs-newer]'), 'no newer page than the newest');
  await page.click('[data-testid=runs-older]');
  const second = await until('the older page', async () => {
    const now = await ids();
    return now.length > 0 && now[0] !== first[0] ? now : undefined;
  });
  const want = (await api.call('GET', `/api/runs?limit=100&starting_after=${first.at(-1)}`)).body.runs.map((r: { id: string }) => r.id);
  t.same(second, want, 'the runs after the first page, as the api lists them');
  t.same(second.filter((id) => first.includes(id)), [], 'no run on both pages');
  t.match(await page.textContent('[data-testid=runs-page]'), /page 2, 100 shown/);
  await page.click('[data-testid=runs-newer]');
  await until('the newest page again', async () => ((await ids())[0] === first[0] ? true : undefined));
  noPageErrors(t);
});

t.test('an admin empties a queue from the runs page, after a confirm', async (t) => {
  // Due in an hour: they wait in the queue although a worker runs.
  const startAfter = new Date(Date.now() + 3_600_000);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await publishRun(api.database.db, api.boss, { job: 'canary', params: {}, trigger: 'task', startAfter }));
  const page = await openPage(t, ADMIN_TOKEN);
  await page.goto(`${api.url}/ui/#/runs`);
  await page.waitForSelector('[data-testid=runs]');
  t.equal(await page.locator('[data-testid=cancel-runs]').count(), 0, 'no cancel button before a job is chosen');
  await page.selectOption('select[name=job]', 'canary');
  await page.selectOption('select[name=state]', 'queued');
  await page.waitForSelector(`tr[data-run="${ids[0]}"]`);
  let asked = '';
  page.once('dialog', (d) => {
    asked = d.message();
    void d.accept();
  });
  await page.click('[data-testid=cancel-runs]');
  await page.waitForSelector('[data-testid=message]:has-text("cancelled")');
  t.match(asked, /Cancel every queued run of canary\?/, 'the page asks first');
  t.match(await page.textContent('[data-testid=message]'), /^cancelled \d+ queued run\(s\) of canary$/);
  for (const id of ids) t.equal((await api.call('GET', `/api/runs/${id}`)).body.state, 'cancelled');
  noPageErrors(t);
});

t.test('an admin requeues a dead letter from the page', async (t) => {
  const sent = await api.call('POST', '/api/tasks/fetch-candles?max_retries=0', { body: { exchange: 'upbit', symbol: 'KRW-NOPE', timeframe: '1D', daysBack: 3 } });
  t.equal(sent.status, 202);
  const id = sent.body.task_id as string;
  await until('the dead letter', async () => {
    const run = (await api.call('GET', `/api/runs/${id}`)).body;
    if (run.state !== 'failed') t.comment(JSON.stringify(run));
    return run.state === 'failed' ? true : undefined;
  }, 10_000);

  const page = await openPage(t, ADMIN_TOKEN);
  await page.goto(`${api.url}/ui/#/dead-letters`);
  await page.waitForSelector(`tr[data-run="${id}"]`);
  await page.screenshot({ path: path.join(artifacts, 'dead-letters.png'), fullPage: true });
  await page.click(`tr[data-run="${id}"] >> text=Requeue`);
  await page.waitForSelector('[data-testid=message]:has-text("requeued as")');
  const original = (await api.call('GET', `/api/runs/${id}`)).body;
  t.type(original.requeued_as, 'string', 'the dead letter links to its requeued run');
  const again = (await api.call('GET', `/api/runs/${original.requeued_as}`)).body;
  t.equal(again.retry_of, id);
  t.equal(again.job, 'fetch-candles');
  noPageErrors(t);
});

t.test('the data page shows what is stored per series, its gaps and last collection, and charts its candles', async (t) => {
  // 100 daily candles with two days missing, as a collection with STORAGE=postgres leaves them.
  await api.database.sql`
    insert into wombat.candles (exchange, symbol, timeframe, time, open, high, low, close, volume, quote_volume)
    select 'upbit', 'KRW-BTC', '1D', ts, 100 + n, 104 + n, 97 + n, 100 + n + (case when n % 3 = 0 then -2 else 2 end), 10, 1000
    from generate_series('2026-01-01'::timestamptz, '2026-04-10'::timestamptz, interval '1 day') with ordinality g(ts, n)
    where ts not in ('2026-02-01'::timestamptz, '2026-03-01'::timestamptz)`;
  const page = await openPage(t, ADMIN_TOKEN);
  await page.click('a[href="#/data"]');
  const row = page.locator('tr[data-series="upbit/KRW-BTC/1D"]');
  await row.waitFor();
  const cells = await row.locator('td').allTextContents();
  t.equal(cells[3], '2026-01-01 00:00:00Z', 'first candle');
  t.equal(cells[4], '2026-04-10 00:00:00Z', 'last candle');
  t.equal(cells[5], '98', 'count');
  t.equal(cells[6], '2', 'missing days');
  // The dead letter's fetch-candles run is that series' latest collection.
  const nope = page.locator('tr[data-series="upbit/KRW-NOPE/1D"]');
  await nope.waitFor();
  t.match(await nope.textContent(), /failed/);
  await row.locator('text=Chart').click();
  await page.waitForSelector('[data-testid=candle-chart] canvas');
  await page.screenshot({ path: path.join(artifacts, 'data.png'), fullPage: true });
  noPageErrors(t);
});

t.test('every dashboard module is served with its type and the same headers, and nothing outside ui/', async (t) => {
  const uiDir = path.join(repoRoot, 'services/api/ui');
  const own = readdirSync(uiDir, { recursive: true }).map((f) => String(f).split(path.sep).join('/')).filter((f) => /\.(js|css)$/.test(f));
  t.ok(own.includes('pages/runs.js') && own.includes('client.js'), `the modules are there: ${own.join(', ')}`);
  for (const file of ['', ...own]) {
    const res = await fetch(`${api.url}/ui/${file}`);
    t.equal(res.status, 200, `/ui/${file}`);
    const type = file === '' ? 'text/html' : file.endsWith('.css') ? 'text/css' : 'text/javascript';
    t.match(res.headers.get('content-type'), type, `/ui/${file} is ${type}`);
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    t.equal(res.headers.get('cache-control'), 'no-cache');
    t.match(res.headers.get('content-security-policy'), /default-src 'self'/);
    const text = await res.text();
    const copies = /'retrying', ?'completed'|'manual', ?'task'|'fetch-candles', ?'canary'/;
    if (file.endsWith('.js')) t.notMatch(text, copies, `${file} keeps no copy of the api's lists`);
    const long = text.split('\n').filter((line) => line.length > 160);
    t.same(long, [], `${file || 'index.html'} has no line over 160 characters`);
  }
  for (const outside of ['../package.json', '%2e%2e/package.json', 'pages/../../src/app.ts', '..%2fsrc%2fapp.ts', 'pages', 'pages/']) {
    const res = await fetch(`${api.url}/ui/${outside}`);
    t.equal(res.status, 404, `/ui/${outside} is not served`);
  }
});

t.test('every page renders, with the run states, triggers and job types read from /api/meta', async (t) => {
  const sent = await api.call('POST', '/api/tasks/canary', { body: {} });
  const runId = sent.body.task_id as string;
  const page = await openPage(t, ADMIN_TOKEN);
  const asked: string[] = [];
  page.on('request', (r) => asked.push(new URL(r.url()).pathname));
  await page.reload();
  await page.waitForSelector('[data-testid=engines-alive]');
  t.ok(asked.includes('/api/meta'), 'the page asks the api for its lists');
  const pages: [string, string, string][] = [
    ['overview', '#/', '[data-testid=runs-24h]'],
    ['schedules', '#/schedules', '[data-testid=schedules] tr[data-schedule]'],
    ['runs', '#/runs', '[data-testid=runs] tr[data-run]'],
    ['run', `#/runs/${runId}`, '[data-testid=run-state] [data-state]'],
    ['dead-letters', '#/dead-letters', '[data-testid=dead-letters]'],
    ['data', '#/data', '[data-testid=series] tr[data-series]'],
  ];
  for (const [name, hash, landmark] of pages) {
    await page.goto(`${api.url}/ui/${hash}`);
    await page.waitForSelector(landmark);
    t.match(await page.textContent('main h1'), /\w/, `${hash} has its heading`);
    await page.screenshot({ path: path.join(artifacts, `page-${name}.png`), fullPage: true });
  }

  await page.goto(`${api.url}/ui/#/runs`);
  await page.waitForSelector('select[name=state]');
  const listed = (name: string) => page.$$eval(`select[name=${name}] option`, (os) => os.map((o) => o.getAttribute('value') ?? '').filter(Boolean));
  t.same(await listed('state'), RUN_STATES, 'the state filter lists exactly the run states');
  t.same(await listed('trigger'), RUN_TRIGGERS, 'the trigger filter lists exactly the run triggers');
  t.same(await listed('job'), JOB_TYPES, 'the job filter lists exactly the job types');
  noPageErrors(t);
});

t.test('a field error lands next to the field the api names in error.field', async (t) => {
  const body = { name: '2026', job: 'canary', cron: '*/5 * * * *', overlap: 'skip', missed: 'once', params: {} };
  const refused = await api.call('POST', '/api/schedules', { body });
  t.equal(refused.body.error.field, 'name', 'the api names the field');
  const page = await openPage(t, ADMIN_TOKEN);
  await page.click('a[href="#/schedules"]');
  await page.click('text=New schedule');
  await page.fill('[data-testid=schedule-form] input[name=name]', body.name);
  await page.click('text=Create schedule');
  await page.waitForSelector('[data-error-for=name]');
  t.equal(await page.textContent('[data-error-for=name]'), refused.body.error.message, 'the message, beside the name field');
  t.equal(await page.locator('[data-error-for]').count(), 1, 'and nowhere else');
  t.equal(await page.locator('#f-name ~ [data-error-for=name]').count(), 1, 'in the same cell as the name input');
  noPageErrors(t);
});

t.test('a read-only token sees the pages without any action button', async (t) => {
  const page = await openPage(t, READ_TOKEN);
  await page.waitForSelector('[data-testid=engines-alive]');
  t.match(await page.textContent('[data-testid=role]'), /read-only token/);
  await page.click('a[href="#/schedules"]');
  await page.waitForSelector('tr[data-schedule=dashboard-canary]');
  for (const label of ['New schedule', 'Pause', 'Resume', 'Run now', 'Edit', 'Delete']) {
    t.equal(await page.locator(`button:has-text("${label}")`).count(), 0, `no ${label} button`);
  }
  await page.click('a[href="#/dead-letters"]');
  await page.waitForSelector('[data-testid=dead-letters]');
  t.equal(await page.locator('button').count(), 0, 'no button at all on dead letters');
  // The api, not only the page, refuses the read token's actions.
  const refused = await api.call('POST', '/api/dead-letters/requeue', { body: { all: true }, token: READ_TOKEN });
  t.equal(refused.status, 403);
  noPageErrors(t);
});
