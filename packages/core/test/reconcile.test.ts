import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { applyAttemptUpdates, publishRun, reconcileRuns, registerWorker, startBoss, type Run } from '@wombat/core';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);
const boss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));

const live = randomUUID();
const dead = randomUUID();
for (const id of [live, dead]) await registerWorker(tdb.db, { id, host: 'h', pid: 1, version: 't', queues: ['canary'], concurrency: 1, heartbeatIntervalMs: 1000 });
await sql`update wombat.workers set last_beat_at = now() - interval '1 minute' where id = ${dead}`.execute(tdb.db);

const run = (id: string): Promise<Run> => tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

/** A canary run whose job a worker has claimed and started, recorded a while ago. */
async function started(workerId: string, retryLimit = 0): Promise<string> {
  const id = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 1 }, trigger: 'task', retryLimit, retryDelaySeconds: 60 });
  const [job] = await boss.fetch('canary', { batchSize: 1 });
  if (job?.id !== id) throw new Error('expected to claim the run just published');
  await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, state: 'running', workerId, attemptStartedAt: new Date().toISOString() }]);
  await sql`update wombat.runs set created_at = now() - interval '1 minute' where id = ${id}`.execute(tdb.db);
  return id;
}

t.test('runs take the outcome pg-boss recorded when their worker did not', async (t) => {
  const healthy = await started(live);
  const completed = await started(live);
  await boss.complete('canary', completed, { answer: 42 });
  const gone = await started(live);
  await sql`delete from pgboss.job where id = ${gone}`.execute(tdb.db);
  const failed = await started(live);
  await boss.fail('canary', failed, { message: 'job timed out' });

  const out = await reconcileRuns(tdb.db, boss);
  t.same(out?.settled, [completed]);
  t.same(new Set(out?.lost), new Set([gone, failed]));
  t.match(await run(completed), { state: 'completed', result: { answer: 42 }, progress: 1 });
  t.match(await run(gone), { state: 'failed', error: { code: 'worker_lost', message: /gone from pg-boss/ } });
  t.match(await run(failed), { state: 'failed', error: { code: 'worker_lost', message: /job timed out/ } });
  t.ok((await run(failed)).finished_at instanceof Date);
  t.match(await run(healthy), { state: 'running', error: null }, 'a run of a live worker with an active job is left alone');
});

t.test('a run whose worker went silent is retried when attempts remain, failed worker_lost otherwise', async (t) => {
  const retried = await started(dead, 1);
  const out1 = await reconcileRuns(tdb.db, boss);
  t.same(out1?.retrying, [retried]);
  t.match(await run(retried), { state: 'retrying', error: { code: 'worker_lost', message: /attempt 1 was lost: its worker stopped sending heartbeats/ }, finished_at: null });
  t.equal((await boss.getJobById('canary', retried))?.state, 'retry', 'pg-boss will run it again');

  const last = await started(dead, 0);
  const out2 = await reconcileRuns(tdb.db, boss);
  t.same(out2?.lost, [last]);
  t.match(await run(last), { state: 'failed', error: { code: 'worker_lost' } });
  t.equal((await boss.getJobById('canary', last))?.state, 'failed');
  t.same(await reconcileRuns(tdb.db, boss), { lost: [], retrying: [], settled: [] }, 'a second sweep changes nothing');
});

t.test('one engine reconciles at a time', async (t) => {
  await tdb.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('wombat.reconcile'))`.execute(trx);
    t.equal(await reconcileRuns(tdb.db, boss), null, 'another holder of the lock: nothing done');
  });
});
