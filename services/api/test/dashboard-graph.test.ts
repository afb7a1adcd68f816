import { randomUUID } from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import type { RunState } from '@wombat/core/runs';
import { artifacts, launchBrowser } from './browser.ts';
import { ADMIN_TOKEN, startTestApi } from './helpers.ts';

/**
 * The schedules' dependency graph: GET /api/schedules/graph, its drawing on the
 * schedules page, and what a waiting run waits for on its page, in a real browser.
 */
const browser = await launchBrowser(t);
const api = await startTestApi(t, { auth: { reads: 'token' } });
const db = api.database.db;

async function create(body: object) {
  const res = await api.call('POST', '/api/schedules', { body: { job: 'canary', timezone: 'UTC', ...body } });
  if (res.status !== 201) throw new Error(JSON.stringify(res.body));
  return res.body as { id: number; name: string; after: string[]; wait_for: number; wait_for_seconds: number };
}

async function run(scheduleId: number, state: RunState, reason: string | null = null): Promise<string> {
  const id = randomUUID();
  await db.insertInto('wombat.runs').values({ id, job: 'canary', trigger: 'schedule', schedule_id: scheduleId, scheduled_for: new Date(), state, reason }).execute();
  return id;
}

const symbols = await create({ name: 'g-symbols', times: ['00:00'] });
const prices = await create({ name: 'g-prices', times: ['00:02'], after: ['g-symbols'], wait_for: '90m' });
await create({ name: 'g-report', times: ['01:00'], after: ['g-prices', 'g-symbols'] });
await create({ name: 'g-alone', every: '1h' });
await run(symbols.id, 'running');
const waiting = await run(prices.id, 'waiting', 'waits for g-symbols (after): their runs for the same period must complete first, for up to 5400s');

t.test('the api answers after and wait_for, refuses a cycle and lists the graph', async (t) => {
  t.same(prices.after, ['g-symbols']);
  t.equal(prices.wait_for, 5400);
  t.equal(prices.wait_for_seconds, 5400);
  const cycle = await api.call('PATCH', `/api/schedules/${symbols.id}`, { body: { after: ['g-report'] } });
  t.equal(cycle.status, 400);
  t.match(cycle.body.error.message, /after would make a cycle: 'g-symbols' -> 'g-report' -> 'g-(prices|symbols)'/);
  const gone = await api.call('DELETE', `/api/schedules/${symbols.id}`);
  t.equal(gone.status, 409);
  t.match(gone.body.error.message, /'g-symbols' is a prerequisite of 'g-prices', 'g-report'/);
  const unknown = await api.call('POST', '/api/schedules', { body: { name: 'g-x', job: 'canary', every: '1h', after: ['nope'] } });
  t.equal(unknown.status, 400);
  t.match(unknown.body.error.message, /after names 'nope' which is not a schedule/);
  const graph = await api.call('GET', '/api/schedules/graph');
  t.equal(graph.status, 200);
  t.same(
    graph.body.edges.sort((a: { from: string; to: string }, b: { from: string; to: string }) => `${a.to}${a.from}`.localeCompare(`${b.to}${b.from}`)),
    [
      { from: 'g-symbols', to: 'g-prices' },
      { from: 'g-prices', to: 'g-report' },
      { from: 'g-symbols', to: 'g-report' },
    ],
  );
  t.match(graph.body.nodes.find((n: { name: string }) => n.name === 'g-prices'), { last_run_state: 'waiting', last_run_id: waiting, after: ['g-symbols'] });
  t.match(graph.body.nodes.find((n: { name: string }) => n.name === 'g-report'), { last_run_state: null });
  const doc = await api.call('GET', '/openapi.json');
  t.ok(doc.body.paths['/api/schedules/graph'], 'the graph route is in the OpenAPI document');
  const text = JSON.stringify(doc.body);
  t.match(text, /"wait_for"/, 'and the new fields');
  t.match(text, /"after"/);
  t.match(text, /dependency_timeout/, 'and the skip reasons');
  t.match(text, /waiting, held, queued/, 'and the waiting state');
});

t.test('the schedules page draws the graph; a waiting run says what it waits for', async (t) => {
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`${api.url}/`);
  await page.fill('input[name=token]', ADMIN_TOKEN);
  await page.click('button[type=submit]');
  await page.click('a[href="#/schedules"]');
  await page.waitForSelector('[data-testid=schedule-graph] [data-node=g-report]');
  const nodes = await page.$$eval('[data-testid=schedule-graph] [data-node]', (els) => els.map((e) => [e.getAttribute('data-node'), e.getAttribute('data-state')]));
  t.same(new Map(nodes as [string, string][]), new Map([['g-symbols', 'running'], ['g-prices', 'waiting'], ['g-report', 'none']]), 'the schedules that take part, with their last run\'s state');
  const edges = await page.$$eval('[data-testid=schedule-graph] [data-edge]', (els) => els.map((e) => e.getAttribute('data-edge')).sort());
  t.same(edges, ['g-prices->g-report', 'g-symbols->g-prices', 'g-symbols->g-report']);
  const x = async (name: string) => Number(await page.getAttribute(`[data-node=${name}] rect`, 'x'));
  t.ok((await x('g-symbols')) < (await x('g-prices')) && (await x('g-prices')) < (await x('g-report')), 'each to the right of what it waits for');
  t.equal(await page.textContent('tr[data-schedule=g-report] [data-testid=after]'), 'after g-prices, g-symbols', 'the list says what each schedule waits for');
  await page.locator('[data-testid=schedule-graph]').screenshot({ path: path.join(artifacts, 'schedule-graph.png') });

  await page.goto(`${api.url}/#/runs/${waiting}`);
  await page.waitForSelector('[data-testid=waits-for] [data-state=running]');
  t.match(await page.textContent('[data-testid=waits-for]'), /g-symbols\s*running/);
  t.match(await page.textContent('[data-testid=run-state]'), /waiting.*waits for g-symbols/s);
  t.same(errors, [], 'no script error on the page');
});
