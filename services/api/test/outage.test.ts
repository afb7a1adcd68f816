import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDatabase, startBoss } from '@wombat/core/platform';
import type { CoreTables } from '@wombat/core/tables';
import { startPrivatePostgres, testLogger } from '@wombat/core/testing';
import { buildApp } from '../src/app.ts';
import { ADMIN_TOKEN } from './helpers.ts';

/**
 * The api against a PostgreSQL this file stops, restarts and freezes: requests that
 * need the database answer 503 database_unavailable with Retry-After (never 500,
 * never hang), /health says so, and task submission works again once it is back.
 */
const pg = await startPrivatePostgres(t);
const log = testLogger();

async function startApi(t: { teardown(fn: () => unknown): void }, dbOpts: { statementTimeoutMs: number; transactionTimeoutMs: number; connectTimeoutMs: number }, extra: { submitTimeoutMs: number; writerStuckAfterMs?: number }) {
  const database = createDatabase<CoreTables>({ url: pg.url, poolSize: 4, ...dbOpts });
  t.teardown(() => database.close());
  const boss = await startBoss({ url: pg.url, role: 'producer', log, poolSize: 2, connectTimeoutMs: 1000 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const app = await buildApp({
    db: database.db,
    sql: database.sql,
    boss,
    log,
    auth: { adminToken: ADMIN_TOKEN, reads: 'open' },
    taskResultTtlDays: 7,
    healthPingTimeoutMs: 1000,
    ...extra,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  /** A request with a client-side limit: 'hung' when the api did not answer within it. */
  async function call(method: string, path: string, body?: unknown) {
    const started = performance.now();
    try {
      const res = await fetch(url + path, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(15_000),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers, ms: Math.round(performance.now() - started) };
    } catch (err) {
      return { status: 0, body: { hung: String(err) }, headers: new Headers(), ms: Math.round(performance.now() - started) };
    }
  }
  return { call, database };
}

t.test('database stopped: 503 database_unavailable with Retry-After, /health 503; back to 202 after the restart', async (t) => {
  const api = await startApi(t, { statementTimeoutMs: 5000, transactionTimeoutMs: 10000, connectTimeoutMs: 1000 }, { submitTimeoutMs: 2000 });
  const first = await api.call('POST', '/api/tasks/canary', {});
  t.equal(first.status, 202, 'accepted while the database is up');

  await pg.stop();
  const during = await Promise.all([
    api.call('POST', '/api/tasks/canary', {}),
    api.call('POST', '/api/backtests/run-async', { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z' }),
    api.call('GET', '/api/runs'),
    api.call('GET', `/api/tasks/${first.body.task_id}`),
  ]);
  for (const r of during) {
    t.equal(r.status, 503, `answers 503 during the outage (${r.ms} ms)`);
    t.equal(r.body?.error?.code, 'database_unavailable');
    t.equal(r.headers.get('retry-after'), '5', 'with Retry-After');
  }
  t.comment(`outage answers in ${during.map((r) => r.ms).join(', ')} ms`);
  const health = await api.call('GET', '/health');
  t.equal(health.status, 503, '/health is unhealthy while the database is down');
  t.equal(health.body.database.ok, false);

  await pg.start();
  let accepted: Awaited<ReturnType<typeof api.call>> | undefined;
  const restartedAt = Date.now();
  while (Date.now() - restartedAt < 30_000) {
    const r = await api.call('POST', '/api/tasks/canary', {});
    t.ok(r.status === 202 || r.status === 503, `every submission is answered 202 or 503 (${r.status})`);
    if (r.status === 202) {
      accepted = r;
      break;
    }
    await sleep(100);
  }
  t.ok(accepted, 'submissions are accepted again after the restart');
  t.comment(`accepting tasks ${Date.now() - restartedAt} ms after the restart`);
  const run = await api.database.db.selectFrom('wombat.runs').select('id').where('id', '=', accepted!.body.task_id).executeTakeFirst();
  t.ok(run, 'the accepted task has its run');
  t.equal((await api.call('GET', '/health')).status, 200, '/health is healthy again');
});

t.test('database frozen: submissions answered 503 at their deadline, later ones too; /health reports the stuck writer', async (t) => {
  // The pool's own deadlines are far longer than the submitter's: only the submitter can answer in time.
  const api = await startApi(t, { statementTimeoutMs: 0, transactionTimeoutMs: 0, connectTimeoutMs: 8000 }, { submitTimeoutMs: 500, writerStuckAfterMs: 1000 });
  const earlier = new Set((await api.database.db.selectFrom('wombat.runs').select('id').execute()).map((r) => r.id));
  const acceptedIds: string[] = [];
  const before = await api.call('POST', '/api/tasks/canary', {});
  t.equal(before.status, 202);
  acceptedIds.push(before.body.task_id);
  pg.pause();
  let resumed = false;
  t.teardown(() => {
    if (!resumed) pg.resume();
  });
  const first = await Promise.all([api.call('POST', '/api/tasks/canary', {}), api.call('POST', '/api/tasks/canary', {})]);
  const later = await Promise.all([api.call('POST', '/api/tasks/canary', {}), api.call('POST', '/api/tasks/canary', {})]);
  for (const r of [...first, ...later]) {
    t.equal(r.status, 503, `a submission during the freeze is answered 503, not left hanging (${r.ms} ms)`);
    t.equal(r.body?.error?.code, 'database_unavailable');
  }
  await sleep(1200);
  const health = await api.call('GET', '/health');
  t.equal(health.status, 503, '/health is unhealthy');
  t.equal(health.body.writers.submitter.ok, false, 'and names the stuck writer');
  t.match(health.body.writers.submitter.problem, /abandoned write/);
  pg.resume();
  resumed = true;
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    const r = await api.call('POST', '/api/tasks/canary', {});
    ok = r.status === 202;
    if (ok) acceptedIds.push(r.body.task_id);
    else await sleep(100);
  }
  t.ok(ok, 'submissions are accepted again once the database answers');
  let healthy = false;
  for (let i = 0; i < 100 && !healthy; i++) {
    healthy = (await api.call('GET', '/health')).status === 200;
    if (!healthy) await sleep(100);
  }
  t.ok(healthy, '/health recovers once the abandoned write settles');
  const runs = await api.database.db.selectFrom('wombat.runs').select('id').where('trigger', '=', 'task').execute();
  t.same(runs.map((r) => r.id).filter((id) => !earlier.has(id)).sort(), acceptedIds.sort(), 'exactly the submissions answered 202 have runs: the abandoned writes rolled back');
});
