import t from 'tap';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { JOB_TYPES, type JobType } from '@wombat/core/jobs';
import { publishRun } from '@wombat/core/runs';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { createHistoryWriter } from '../src/index.ts';
import { loadConfig, queueSettings } from '../src/config.ts';

/**
 * Runs whose jobs a worker has claimed (history writes are fenced to a claim held in pg-boss), one
 * per entry: its job type and the attempt the claim is at.
 */
async function claimedRuns(t: { teardown(fn: () => unknown): void }, tdb: TestDatabase, runs: { job: JobType; attempt?: number }[]): Promise<string[]> {
  const boss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const ids: string[] = [];
  for (const r of runs) {
    const id = await publishRun(tdb.db, boss, { job: r.job, params: r.job === 'canary' ? {} : { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], timeframe: '1D', from: '2025-01-01T00:00:00Z', to: '2025-02-01T00:00:00Z' }, trigger: 'task', retryLimit: 3, retryDelaySeconds: 0 });
    for (let attempt = 1; ; attempt++) {
      const [job] = await boss.fetch(r.job, { batchSize: 1 });
      if (job?.id !== id) throw new Error('expected to claim the run just published');
      if (attempt === (r.attempt ?? 1)) break;
      await boss.fail(r.job, { id, retryCount: job.retryCount }, { message: 'an earlier attempt' });
      await sql`update pgboss.job set start_after = now() where id = ${id}`.execute(tdb.db);
    }
    ids.push(id);
  }
  return ids;
}

t.test('buffered history: coalesces per run, keeps cancelled runs and ignores stale attempts', async (t) => {
  const tdb = await createTestDatabase(t);
  const ids = await claimedRuns(t, tdb, [{ job: 'canary' }, { job: 'backtest' }, { job: 'backtest' }, { job: 'backtest', attempt: 2 }, { job: 'backtest' }]);
  await sql`update wombat.runs set scheduled_for = now() - interval '1 second'`.execute(tdb.db);
  await sql`update wombat.runs set state = 'cancelled' where id = ${ids[2]!}`.execute(tdb.db);
  const history = createHistoryWriter({ sql: tdb.sql, log: tdb.log, flushMs: 1000, batchRows: 1000 });
  t.teardown(() => history.close());
  const started = new Date().toISOString();
  const [canary, backtest, cancelled, retried, lost] = ids as [string, string, string, string, string];

  void history.write({ id: canary, attempts: 1, state: 'running', attemptStartedAt: started, progress: 0 });
  void history.write({ id: canary, attempts: 1, state: 'completed', result: {}, finishedAt: started });
  void history.write({ id: backtest, attempts: 1, state: 'running', attemptStartedAt: started });
  void history.write({ id: backtest, attempts: 1, progress: 0.5, progressMessage: 'half way' });
  void history.write({ id: cancelled, attempts: 1, state: 'failed', error: { message: 'aborted' }, finishedAt: started });
  void history.write({ id: retried, attempts: 2, state: 'running', attemptStartedAt: started });
  void history.write({ id: retried, attempts: 1, state: 'failed', error: { message: 'late' } });
  t.equal(history.pending, 4, 'one buffered row per run');
  const written = history.write({ id: lost, attempts: 1, state: 'retrying', error: { name: 'Error', message: 'boom' } });
  await history.flush();
  await written;

  const rows = new Map((await tdb.db.selectFrom('wombat.runs').selectAll().execute()).map((r) => [r.id, r]));
  t.match(rows.get(canary), { state: 'completed', attempts: 1, progress: 1 });
  t.ok((rows.get(canary)!.result as { latencyMs: number }).latencyMs >= 1000, 'canary latency counts from scheduled_for');
  t.match(rows.get(backtest), { state: 'running', progress: 0.5, progress_message: 'half way', finished_at: null });
  t.match(rows.get(cancelled), { state: 'cancelled', error: null }, 'a cancelled run is never overwritten');
  t.match(rows.get(retried), { state: 'running', attempts: 2, error: null }, 'the older attempt was dropped');
  t.match(rows.get(lost), { state: 'retrying', error: { message: 'boom' }, finished_at: null });

  // A later write from attempt 1 after attempt 2 was stored is ignored by the statement itself.
  await history.write({ id: retried, attempts: 1, state: 'failed', error: { message: 'late' } }).then(() => history.flush());
  await history.flush();
  t.match(await tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', retried).executeTakeFirst(), { state: 'running', attempts: 2 });

  // A 'running' write for a run the api cancelled reports it, so its job can be stopped.
  const starting = history.write({ id: cancelled, attempts: 1, state: 'running', attemptStartedAt: started });
  void history.write({ id: backtest, attempts: 1, state: 'running', attemptStartedAt: started });
  await history.flush();
  t.same([...(await starting).cancelled], [cancelled], 'only the cancelled run is reported');
  t.match(await tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', cancelled).executeTakeFirst(), { state: 'cancelled', attempts: 0 });

  // An empty flush leaves the writer working.
  await history.flush();
  const later = history.write({ id: backtest, attempts: 1, progress: 0.75 });
  await history.flush();
  await later;
  t.match(await tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', backtest).executeTakeFirst(), { progress: 0.75 });

  await history.close();
  await t.rejects(history.write({ id: canary, attempts: 1 }), { message: 'run history writer is closed' });
});

t.test('configuration names every bad variable and resolves queues', async (t) => {
  t.throws(() => loadConfig({ WORKER_QUEUES: 'canary,nope', WORKER_CONCURRENCY: 'fetch-candles=0', WORKER_POLL_INTERVAL_SECONDS: '0.1' }), {
    message: /WORKER_QUEUES="canary,nope": "nope" is not a job type[\s\S]*WORKER_CONCURRENCY="fetch-candles=0": fetch-candles must be between 1 and 1000[\s\S]*WORKER_POLL_INTERVAL_SECONDS="0.1": must be a number from 0.5 to 60/,
  });
  const config = loadConfig({ WORKER_QUEUES: 'canary,fetch-candles', WORKER_CONCURRENCY: 'fetch-candles=8', WORKER_BATCH_SIZE: 'canary=200' });
  t.same(Object.fromEntries(queueSettings(config)), { canary: { workers: 4, batchSize: 200 }, 'fetch-candles': { workers: 8, batchSize: 1 } });
  t.equal(queueSettings(loadConfig({})).size, JOB_TYPES.length, 'all queues by default');
});

t.test('a failed history write is kept and retried; the buffer stays bounded, progress dropped before outcomes', async (t) => {
  const tdb = await createTestDatabase(t);
  const ids = await claimedRuns(t, tdb, Array.from({ length: 4 }, () => ({ job: 'backtest' as const })));
  await tdb.sql`create function wombat.test_blip() returns trigger language plpgsql as $$ begin raise exception 'simulated blip'; end $$`;
  await tdb.sql`create trigger test_blip before update on wombat.runs for each row execute function wombat.test_blip()`;
  const history = createHistoryWriter({ sql: tdb.sql, log: tdb.log, flushMs: 0, batchRows: 1000, maxPendingRows: 3, retryMinMs: 20, retryMaxMs: 50 });
  t.teardown(() => history.close(100));
  const [a, b, c, d] = ids as [string, string, string, string];
  const done = history.write({ id: a, attempts: 1, state: 'completed', result: { ok: true }, finishedAt: new Date().toISOString() });
  await history.flush();
  t.equal(history.pending, 1, 'the failed write is kept');
  void history.write({ id: b, attempts: 1, progress: 0.5 });
  void history.write({ id: c, attempts: 1, state: 'failed', error: { message: 'x' }, finishedAt: new Date().toISOString() });
  void history.write({ id: d, attempts: 1, state: 'running', attemptStartedAt: new Date().toISOString() });
  t.equal(history.pending, 3, 'bounded');
  await tdb.sql`drop trigger test_blip on wombat.runs`;
  await done;
  await history.flush();
  const rows = new Map((await tdb.db.selectFrom('wombat.runs').selectAll().execute()).map((r) => [r.id, r]));
  t.match(rows.get(a), { state: 'completed', result: { ok: true } }, 'the retried write landed');
  const jobs = new Map((await sql<{ id: string; state: string }>`select id, state::text from pgboss.job`.execute(tdb.db)).rows.map((j) => [j.id, j.state]));
  t.equal(jobs.get(a), 'completed', 'a completion written after a failure settles its job: the worker\'s own settle may have failed meanwhile');
  t.equal(jobs.get(c), 'active', 'failures are left to pg-boss\'s own settle (and the reconciler)');
  t.match(rows.get(b), { state: 'queued', progress: 0 }, 'the progress-only change was the one dropped');
  t.match(rows.get(c), { state: 'failed' });
  t.match(rows.get(d), { state: 'running' });
});
