/**
 * Overlap queue-one across retries: an engine and a worker on the test database,
 * every run failing its first attempt. Two runs of the schedule must never be
 * executing at once, judged from the recorded start and finish times.
 */
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { AppError, startBoss } from '@wombat/core/platform';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { createEngine } from '@wombat/scheduler-engine';
import { createWorker } from '@wombat/worker';

t.test('queue-one never lets two runs of a schedule execute at once, across failed attempts and their retries', async (t) => {
  const tdb = await createTestDatabase(t);
  const def = validateScheduleInput({
    name: 'queue-one-flaky',
    job: 'canary',
    every: '1s',
    overlap: 'queue-one',
    max_retries: 1,
    retry_delay_seconds: 1,
    retry_backoff: false,
    params: { sleep_ms: 1200 },
  });
  if (!def.ok) throw new Error(def.problems.join('; '));
  const schedule = await insertSchedule(tdb.db, def.value);

  const workerBoss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 3 });
  t.teardown(() => workerBoss.stop({ graceful: false, close: true }));
  const worker = createWorker({
    db: tdb.db,
    sql: tdb.sql,
    boss: workerBoss,
    log: tdb.log,
    // Room for several at once: only the policy keeps them apart.
    queues: new Map([['canary', { workers: 3, batchSize: 1 }]]),
    handlers: {
      canary: async (ctx) => {
        await sleep(ctx.params.sleep_ms ?? 0, undefined, { signal: ctx.signal });
        if (ctx.attempt === 1) throw new AppError('flaky', 'the first attempt fails');
        return { attempt: ctx.attempt };
      },
    },
    pollIntervalSeconds: 0.5,
    drainTimeoutMs: 2000,
  });
  t.teardown(() => worker.stop());
  await worker.start();

  const engineBoss = await startBoss({ url: tdb.url, role: 'maintainer', log: tdb.log, poolSize: 2 });
  t.teardown(() => engineBoss.stop({ graceful: false, close: true }));
  const engine = createEngine({
    db: tdb.db,
    sql: tdb.sql,
    boss: engineBoss,
    log: tdb.log,
    options: {
      enabled: true,
      host: 'test',
      pid: process.pid,
      builtIns: [],
      version: 'test',
      reconcileIntervalMs: 60_000,
      heartbeatIntervalMs: 1_000,
      misfireGraceMs: 1_000,
      heldRunCheckMs: 100,
      runReconcileIntervalMs: 1_000,
      maintenanceIntervalMs: 3_600_000,
      taskResultTtlDays: 7,
      runRetentionDays: 90,
    },
  });
  t.teardown(() => engine.stop());
  await engine.start();

  const enough = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from wombat.runs where schedule_id = ${schedule.id} and state = 'completed'`.execute(tdb.db)).rows[0]!.n >= 3;
  for (const until = Date.now() + 90_000; !(await enough()) && Date.now() < until; ) await sleep(200);
  await engine.stop();
  // Let the waiting and running ones end.
  for (const until = Date.now() + 30_000; Date.now() < until; await sleep(200)) {
    const active = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where schedule_id = ${schedule.id} and state in ('queued', 'running', 'retrying')`.execute(tdb.db);
    if (active.rows[0]!.n === 0) break;
  }

  const runs = await sql<{ id: string; state: string; attempts: number; started_at: Date | null; finished_at: Date | null; scheduled_for: Date; published_at: Date | null }>`
    select id, state, attempts, started_at, finished_at, scheduled_for, published_at from wombat.runs
    where schedule_id = ${schedule.id} and started_at is not null order by started_at`.execute(tdb.db);
  const executed = runs.rows;
  t.ok(executed.filter((r) => r.state === 'completed').length >= 3, 'several runs completed');
  t.ok(executed.every((r) => r.state !== 'completed' || r.attempts === 2), 'each completed run failed once and then succeeded');
  t.ok(executed.every((r) => r.finished_at !== null), 'every run that started has finished');
  const overlaps = executed.slice(1).filter((r, i) => new Date(r.started_at!).getTime() < new Date(executed[i]!.finished_at!).getTime());
  t.same(overlaps.map((r) => r.id), [], 'no run started before the previous one finished (retry wait included)');
  const released = executed.filter((r) => r.published_at !== null && new Date(r.published_at).getTime() - new Date(r.scheduled_for).getTime() > 1000);
  t.ok(released.length >= 1, 'held runs were released after the one before them ended');
  const skipped = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where schedule_id = ${schedule.id} and state = 'skipped'`.execute(tdb.db);
  t.ok(skipped.rows[0]!.n >= 1, 'occurrences beyond the one waiting were skipped');
});
