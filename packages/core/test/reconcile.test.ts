import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { registerWorker } from '@wombat/core/workers';
import { applyAttemptUpdates, ensureJobIndexes, publishRun, reconcileRuns, type Run } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);
const boss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));

const live = randomUUID();
const dead = randomUUID();
for (const id of [live, dead]) await registerWorker(tdb.db, { id, host: 'h', pid: 1, version: 't', queueSettings: [{ queue: 'canary', loops: 1, batchSize: 1 }], heartbeatIntervalMs: 1000 });
await sql`update wombat.workers set last_beat_at = now() - interval '1 minute' where id = ${dead}`.execute(tdb.db);

/** Heartbeats are judged from the server's start at the earliest: a server started moments ago makes every beat look fresh. */
async function serverUpFor(seconds: number): Promise<void> {
  const r = await sql<{ up: number }>`select extract(epoch from now() - pg_postmaster_start_time())::float8 as up`.execute(tdb.db);
  const wait = seconds - r.rows[0]!.up;
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait * 1000));
}
await serverUpFor(17);

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
  t.same(await reconcileRuns(tdb.db, boss), { lost: [], retrying: [], settled: [], jobsSettled: [] }, 'a second sweep changes nothing');
});

t.test('one engine reconciles at a time', async (t) => {
  await tdb.db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('wombat.reconcile'))`.execute(trx);
    t.equal(await reconcileRuns(tdb.db, boss), null, 'another holder of the lock: nothing done');
  });
});

t.test('a superseded attempt: its late writes are refused and kept apart, the run follows the live attempt and agrees with pg-boss', async (t) => {
  const id = await started(dead, 1);
  t.same((await reconcileRuns(tdb.db, boss))?.retrying, [id], 'attempt 1 declared lost');
  // The first attempt was alive after all and finishes late.
  const late = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, workerId: dead, state: 'completed', result: { late: true }, finishedAt: new Date().toISOString() }]);
  t.same([...late.superseded], [id], 'the late completion is refused as superseded');
  t.match(await run(id), { state: 'retrying', result: null }, 'the run keeps what happened to its live attempt');
  t.equal((await boss.getJobById('canary', id))?.state, 'retry');
  const kept = await sql<{ attempt: number; state: string; worker_id: string; result: unknown }>`select attempt, state, worker_id, result from wombat.superseded_attempts where run_id = ${id}`.execute(tdb.db);
  t.same(kept.rows, [{ attempt: 1, state: 'completed', worker_id: dead, result: { late: true } }], 'kept as a superseded attempt');

  // Attempt 2 runs on a live worker; attempt 1's stragglers and another worker's writes do not land.
  await sql`update pgboss.job set start_after = now() where id = ${id}`.execute(tdb.db);
  const [job] = await boss.fetch('canary', { batchSize: 1 });
  t.equal(job?.id, id);
  t.equal(job?.retryCount, 1);
  const start = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 2, workerId: live, state: 'running', attemptStartedAt: new Date().toISOString() }]);
  t.equal(start.superseded.size, 0, 'the live attempt starts');
  const straggler = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, workerId: dead, progress: 0.9 }]);
  t.same([...straggler.superseded], [id], 'a progress write of attempt 1 is refused');
  const intruder = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 2, workerId: randomUUID(), state: 'completed', finishedAt: new Date().toISOString() }]);
  t.same([...intruder.superseded], [id], 'a write naming another worker is refused');
  t.match(await run(id), { state: 'running', attempts: 2, worker_id: live, progress: 0 });
  const done = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 2, workerId: live, state: 'completed', result: { ok: 1 }, finishedAt: new Date().toISOString() }]);
  t.equal(done.superseded.size, 0);
  await boss.complete('canary', { id, retryCount: 1 }, { ok: 1 });
  t.match(await run(id), { state: 'completed', attempts: 2, result: { ok: 1 } });
  t.equal((await boss.getJobById('canary', id))?.state, 'completed', 'run and job agree');
});

t.test('heartbeats are judged from the database\'s return: an outage is no evidence of death', async (t) => {
  const quiet = randomUUID();
  await registerWorker(tdb.db, { id: quiet, host: 'h', pid: 2, version: 't', queueSettings: [{ queue: 'canary', loops: 1, batchSize: 1 }], heartbeatIntervalMs: 1000 });
  const id = await started(quiet, 1);
  // Its worker last beat 20 s ago, and the job's heartbeat is as old: the database was away meanwhile.
  await sql`update wombat.workers set last_beat_at = now() - interval '20 seconds' where id = ${quiet}`.execute(tdb.db);
  await sql`update pgboss.job set heartbeat_on = now() - interval '20 seconds' where id = ${id}`.execute(tdb.db);
  const justBack = await reconcileRuns(tdb.db, boss, { outageEndedAt: new Date() });
  t.notOk(justBack?.retrying.includes(id) || justBack?.lost.includes(id), 'the database just came back: not lost');
  t.match(await run(id), { state: 'running', attempts: 1 });
  t.equal((await boss.getJobById('canary', id))?.state, 'active');
  // Once the limit has passed since the return without a beat, it is.
  const later = await reconcileRuns(tdb.db, boss, { outageEndedAt: new Date(Date.now() - 16_000) });
  t.ok(later?.retrying.includes(id), 'silent for the whole limit after the return: retried');
  t.match(await run(id), { state: 'retrying', error: { code: 'worker_lost' } });
});

t.test('a run its worker failed whose job never settled (the database left in between) is settled in pg-boss, not run again', async (t) => {
  const id = await started(live, 1);
  await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, workerId: live, state: 'failed', error: { message: 'bad input' }, finishedAt: new Date().toISOString() }]);
  t.equal((await boss.getJobById('canary', id))?.state, 'active', 'the worker could not settle the job');
  t.notOk((await reconcileRuns(tdb.db, boss))?.jobsSettled.includes(id), 'not while its heartbeat is fresh');
  await sql`update pgboss.job set heartbeat_on = now() - interval '1 minute' where id = ${id}`.execute(tdb.db);
  t.same((await reconcileRuns(tdb.db, boss, { endedJobs: false }))?.jobsSettled, [], 'a round without the sweep of active jobs leaves it');
  const out = await reconcileRuns(tdb.db, boss);
  t.same(out?.jobsSettled, [id]);
  t.match(await boss.getJobById('canary', id), { state: 'retry' }, 'pg-boss decides as it would have: a retry is left');
  t.match(await run(id), { state: 'failed', error: { message: 'bad input' } });
});

t.test('a held-back completion settles its job in the same statement: pg-boss cannot expire a job whose result is in the history', async (t) => {
  const plain = await started(live, 1);
  await applyAttemptUpdates(tdb.sql, [{ id: plain, attempts: 1, workerId: live, state: 'completed', result: {}, finishedAt: new Date().toISOString() }]);
  t.equal((await boss.getJobById('canary', plain))?.state, 'active', 'without settleCompletedJobs the worker settles the job itself');
  const id = await started(live, 1);
  const out = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, workerId: live, state: 'completed', result: { n: 7 }, finishedAt: new Date().toISOString() }], { settleCompletedJobs: true });
  t.same([...out.superseded, ...out.finished], []);
  t.match(await boss.getJobById('canary', id), { state: 'completed', output: { n: 7 } }, 'settled with the run, before pg-boss\'s own complete');
  t.match(await run(id), { state: 'completed', result: { n: 7 } });
  // The worker's own settle afterwards finds nothing to do and changes nothing.
  await boss.complete('canary', { id, retryCount: 0 }, { other: true });
  t.match(await boss.getJobById('canary', id), { state: 'completed', output: { n: 7 } });
  t.same((await reconcileRuns(tdb.db, boss))?.jobsSettled.includes(id), false);
});

t.test('a job pg-boss failed while its run reads completed at that attempt (its settlement was lost) is completed; other failures stay', async (t) => {
  const lostSettle = await started(live, 0);
  await applyAttemptUpdates(tdb.sql, [{ id: lostSettle, attempts: 1, workerId: live, state: 'completed', result: { n: 3 }, finishedAt: new Date().toISOString() }]);
  // pg-boss's fallback after the worker's settlement failed: the whole batch failed.
  await boss.fail('canary', { id: lostSettle, retryCount: 0 }, { message: 'Connection terminated unexpectedly' });
  t.equal((await boss.getJobById('canary', lostSettle))?.state, 'failed');
  const reallyFailed = await started(live, 0);
  await applyAttemptUpdates(tdb.sql, [{ id: reallyFailed, attempts: 1, workerId: live, state: 'failed', error: { message: 'bad input' }, finishedAt: new Date().toISOString() }]);
  await boss.fail('canary', { id: reallyFailed, retryCount: 0 }, { message: 'bad input' });
  const old = await started(live, 0);
  await applyAttemptUpdates(tdb.sql, [{ id: old, attempts: 1, workerId: live, state: 'completed', result: {}, finishedAt: new Date().toISOString() }]);
  await boss.fail('canary', { id: old, retryCount: 0 }, { message: 'lost long ago' });
  await sql`update pgboss.job set completed_on = now() - interval '1 hour' where id = ${old}`.execute(tdb.db);

  t.same((await reconcileRuns(tdb.db, boss, { endedJobs: false }))?.jobsSettled, [], 'a round without the sweep leaves it');
  const out = await reconcileRuns(tdb.db, boss);
  t.same(out?.jobsSettled, [lostSettle]);
  t.match(await boss.getJobById('canary', lostSettle), { state: 'completed', output: { n: 3 } }, 'completed, agreeing with the run');
  t.match(await run(lostSettle), { state: 'completed', result: { n: 3 } });
  t.equal((await boss.getJobById('canary', reallyFailed))?.state, 'failed', 'a failure the run agrees with stays');
  t.equal((await boss.getJobById('canary', old))?.state, 'failed', 'older than the window: left (the sweep reads a bounded past)');
  t.same((await reconcileRuns(tdb.db, boss))?.jobsSettled, [], 'a second sweep changes nothing');
});

t.test('the sweeps\' indexes on pg-boss\'s job table are built by migrations, and again when missing', async (t) => {
  const names = async () =>
    (await sql<{ name: string }>`select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid
      where i.indrelid = 'pgboss.job_common'::regclass and i.indisvalid and c.relname like 'job_common_wombat_%' order by 1`.execute(tdb.db)).rows.map((r) => r.name);
  t.same(await names(), ['job_common_wombat_active', 'job_common_wombat_failed'], 'there after migrating');
  await sql`drop index pgboss.job_common_wombat_failed`.execute(tdb.db);
  t.same(await ensureJobIndexes(tdb.sql), ['job_common_wombat_failed'], 'a missing one is built');
  t.same(await names(), ['job_common_wombat_active', 'job_common_wombat_failed']);
  t.same(await ensureJobIndexes(tdb.sql), [], 'nothing to do when both are there');
});

t.test('a retry of a run an earlier attempt completed is refused at its start and reported finished', async (t) => {
  const id = await started(live, 2);
  // Attempt 1's result lands, then (a job settled by pg-boss's expiry before the run's statement
  // reached it, simulated here) the job is claimed again.
  await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, workerId: live, state: 'completed', result: { n: 1 }, finishedAt: new Date().toISOString() }]);
  await sql`update pgboss.job set state = 'retry', completed_on = null, start_after = now() where id = ${id}`.execute(tdb.db);
  const [job] = await boss.fetch('canary', { batchSize: 1 });
  t.equal(job?.retryCount, 1, 'attempt 2 claimed');
  const start = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 2, workerId: live, state: 'running', attemptStartedAt: new Date().toISOString() }]);
  t.same([...start.finished], [id], 'reported as completed before');
  t.same([...start.superseded], [], 'not as superseded: the worker settles the job, it does not abort anything');
  t.match(await run(id), { state: 'completed', attempts: 1, result: { n: 1 } }, 'the run keeps attempt 1\'s outcome');
  const late = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 2, workerId: live, state: 'completed', result: { n: 2 }, finishedAt: new Date().toISOString() }]);
  t.same([...late.superseded], [id], 'a completion of the later attempt is refused too');
  t.match(await run(id), { state: 'completed', attempts: 1, result: { n: 1 } });
});

t.test('a run of wombat run (no job) is its process\'s while it beats; silent for a minute, it is lost', async (t) => {
  const { beatCliRun, recordCliRunStart } = await import('@wombat/core/runs');
  const alive = await recordCliRunStart(tdb.db, { job: 'canary', params: {} });
  const dead = await recordCliRunStart(tdb.db, { job: 'canary', params: {} });
  await sql`update wombat.runs set created_at = now() - interval '5 minutes', updated_at = now() - interval '5 minutes' where id in (${alive}, ${dead})`.execute(tdb.db);
  await beatCliRun(tdb.db, alive);
  const out = await reconcileRuns(tdb.db, boss);
  t.notOk(out?.lost.includes(alive), 'a beating cli run is left alone, although it has no job');
  t.match(await run(alive), { state: 'running', error: null });
  t.ok(out?.lost.includes(dead), 'a silent one is lost');
  t.match(await run(dead), { state: 'failed', error: { code: 'worker_lost', message: /wombat run process that ran it stopped/ } });
});

t.test('hand back: a job stopped by its worker\'s shutdown waits again without spending an attempt', async (t) => {
  const { handBackAttempts } = await import('@wombat/core/runs');
  const id = await started(live, 0);
  const other = await started(live, 2);
  // pg-boss settles the stopped jobs as failed (the first on its last attempt), then the worker hands them back.
  await boss.fail('canary', { id, retryCount: 0 }, { code: 'worker_stopped' });
  await boss.fail('canary', { id: other, retryCount: 0 }, { code: 'worker_stopped' });
  t.same(new Set(await handBackAttempts(tdb.db, [{ id, job: 'canary', attempts: 1 }, { id: other, job: 'canary', attempts: 1 }])), new Set([id, other]));
  t.match(await boss.getJobById('canary', other), { state: 'created', retryCount: 0 });
  t.match(await boss.getJobById('canary', id), { state: 'created', retryCount: 0 });
  t.match(await run(id), { state: 'queued', attempts: 0, worker_id: null, error: null, finished_at: null });
  t.same(await handBackAttempts(tdb.db, [{ id, job: 'canary', attempts: 1 }]), [], 'only once');
  const jobs = await boss.fetch('canary', { batchSize: 2 });
  const job = jobs.find((j) => j.id === id);
  t.equal(job?.retryCount, 0, 'the next worker runs attempt 1 again: no retry spent');
  const start = await applyAttemptUpdates(tdb.sql, [{ id, attempts: 1, workerId: live, state: 'running', attemptStartedAt: new Date().toISOString() }]);
  t.equal(start.superseded.size, 0);
  t.match(await run(id), { state: 'running', attempts: 1 });
});

t.test('queued runs are checked a slice per round, oldest first, and a whole pass finds every one', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push(await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 1 }, trigger: 'task' }));
  await sql`update wombat.runs set created_at = now() - interval '1 minute' where id = any(${ids}::uuid[])`.execute(tdb.db);
  const gone = ids[4]!;
  await sql`delete from pgboss.job where id = ${gone}`.execute(tdb.db);
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where state = 'queued'`.execute(tdb.db);
  const queued = { slice: 2, afterId: null as string | null };
  const lost: string[] = [];
  let rounds = 0;
  do {
    const out = await reconcileRuns(tdb.db, boss, { queued });
    lost.push(...(out?.lost ?? []));
    rounds++;
  } while (queued.afterId !== null && rounds < 100);
  // (Earlier tests' runs on the silent worker may be among the lost too.)
  t.same(lost.filter((id) => ids.includes(id)), [gone], 'the queued run whose job is gone ends failed worker_lost');
  t.equal(rounds, Math.floor(rows[0]!.n / 2) + 1, 'one round per slice of the queued runs, then the sweep starts over');
  t.match(await run(gone), { state: 'failed', error: { code: 'worker_lost' } });
});
