import t, { type Test } from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import {
  applyAttemptUpdates,
  cancelRun,
  deleteFinishedRuns,
  foldRunCounts,
  publishRuns,
  readRunCounts,
  requeueRun,
  RUN_DURATION_BUCKETS_SECONDS,
  type RunCountKind,
} from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t, { poolSize: 12 });
const boss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 2 });
t.teardown(() => boss.stop({ graceful: false, close: true }));
const worker = randomUUID();
const now = () => new Date().toISOString();

type Counts = Record<string, number>;

/** What each kind of roll-up must say, counted directly over wombat.runs. */
async function direct(kind: RunCountKind): Promise<{ n: Counts; seconds: Counts }> {
  const where = {
    created: sql`created_at >= date_trunc('minute', now() - interval '24 hours')`,
    current: sql`true`,
    finished: sql`finished_at >= date_trunc('minute', now() - interval '1 hour')`,
    finished_total: sql`finished_at is not null`,
    dead_letters: sql`state = 'failed' and requeued_as is null`,
    lateness_hourly: sql`trigger = 'schedule' and started_at is not null and scheduled_for is not null`,
  }[kind];
  const timed = kind === 'finished' || kind === 'finished_total';
  const late = kind === 'lateness_hourly';
  const bucket = timed
    ? sql`wombat.run_duration_bucket(extract(epoch from finished_at - started_at)::float8)`
    : late ? sql`wombat.run_lateness_bucket(extract(epoch from started_at - scheduled_for)::float8 * 1000)` : sql`0`;
  const seconds = timed ? sql`greatest(extract(epoch from finished_at - started_at), 0)` : late ? sql`extract(epoch from started_at - scheduled_for)` : sql`0`;
  const { rows } = await sql<{ key: string; n: number; seconds: number }>`
    select job || '/' || state || '/' || ${bucket} as key, count(*)::int as n,
      coalesce(sum(${seconds}), 0)::float8 as seconds
    from wombat.runs where ${where} group by 1`.execute(tdb.db);
  return { n: Object.fromEntries(rows.map((r) => [r.key, r.n])), seconds: Object.fromEntries(rows.map((r) => [r.key, r.seconds])) };
}

async function rolledUp(kind: RunCountKind): Promise<{ n: Counts; seconds: Counts }> {
  const windowSeconds = kind === 'created' ? 86_400 : kind === 'finished' ? 3600 : undefined;
  const rows = await readRunCounts(tdb.sql, { kind, ...(windowSeconds ? { windowSeconds } : {}) });
  const key = (r: (typeof rows)[number]) => `${r.job}/${r.state}/${r.bucket}`;
  return { n: Object.fromEntries(rows.map((r) => [key(r), r.n])), seconds: Object.fromEntries(rows.map((r) => [key(r), r.duration_s])) };
}

/** Every kind agrees with count(*) over wombat.runs, before and after a fold (finished_total: until a delete). */
async function agree(t: Test, label: string, kinds: RunCountKind[] = ['created', 'current', 'finished', 'finished_total', 'dead_letters', 'lateness_hourly']) {
  for (const fold of [false, true]) {
    if (fold) await foldRunCounts(tdb.db);
    for (const kind of kinds) {
      const [want, got] = [await direct(kind), await rolledUp(kind)];
      t.same(got.n, want.n, `${label}: ${kind} counts${fold ? ' after a fold' : ''}`);
      for (const [k, s] of Object.entries(want.seconds)) t.ok(Math.abs((got.seconds[k] ?? 0) - s) < 1e-6, `${label}: ${kind} ${k} durations`);
    }
  }
}

/** Canary runs published and claimed by a worker, running attempt 1. */
async function running(n: number, retryLimit = 0): Promise<string[]> {
  const ids = await publishRuns(tdb.db, boss, Array.from({ length: n }, () => ({ job: 'canary' as const, params: {}, trigger: 'task' as const, retryLimit, retryDelaySeconds: 0 })));
  const jobs = await boss.fetch('canary', { batchSize: n });
  t.equal(jobs.length, n, 'the worker claims every run published');
  await applyAttemptUpdates(tdb.sql, ids.map((id) => ({ id, attempts: 1, state: 'running' as const, workerId: worker, attemptStartedAt: new Date(Date.now() - 2000).toISOString() })));
  return ids;
}

t.test('the duration buckets of SQL and TypeScript are the same', async (t) => {
  for (const [i, le] of RUN_DURATION_BUCKETS_SECONDS.entries()) {
    const { rows } = await sql<{ at: number; above: number }>`
      select wombat.run_duration_bucket(${le}::float8) as at, wombat.run_duration_bucket(${le}::float8 + 0.000001) as above`.execute(tdb.db);
    t.same(rows[0], { at: i, above: i + 1 }, `bound ${le}`);
  }
});

t.test('roll-ups equal count(*) through the lifecycle: finish, retry, cancel, requeue, retention', async (t) => {
  await agree(t, 'empty');
  const [done, failed, retried, cancelled] = await running(4, 1);
  await agree(t, 'running');
  await applyAttemptUpdates(tdb.sql, [{ id: done!, attempts: 1, workerId: worker, state: 'completed', result: {}, finishedAt: now() }]);
  await boss.complete('canary', done!);
  await agree(t, 'one completed');

  // failed -> retrying -> running (attempt 2) -> completed
  await boss.fail('canary', retried!, { message: 'boom' });
  await applyAttemptUpdates(tdb.sql, [{ id: retried!, attempts: 1, workerId: worker, state: 'retrying', error: { message: 'boom' } }]);
  await agree(t, 'retrying');
  const again = await boss.fetch('canary', { batchSize: 5 });
  t.same(again.map((j) => j.id), [retried], 'pg-boss runs the retry');
  await applyAttemptUpdates(tdb.sql, [{ id: retried!, attempts: 2, workerId: worker, state: 'running', attemptStartedAt: now() }]);
  await applyAttemptUpdates(tdb.sql, [{ id: retried!, attempts: 2, workerId: worker, state: 'completed', result: {}, finishedAt: now() }]);
  await agree(t, 'retried then completed');

  // the last attempt fails: a dead letter, then requeued (it stops being one)
  await sql`update pgboss.job set retry_limit = 0 where id = ${failed!}`.execute(tdb.db);
  await applyAttemptUpdates(tdb.sql, [{ id: failed!, attempts: 1, workerId: worker, state: 'failed', error: { message: 'no' }, finishedAt: now() }]);
  await agree(t, 'dead letter');
  t.same((await rolledUp('dead_letters')).n, { 'canary/failed/0': 1 });
  await boss.fail('canary', failed!, { message: 'no' });
  await requeueRun(tdb.db, boss, failed!, { trigger: 'manual' });
  await agree(t, 'requeued');
  t.same((await rolledUp('dead_letters')).n, {}, 'a requeued run is no dead letter');

  t.ok(await cancelRun(tdb.db, boss, cancelled!));
  await agree(t, 'cancelled');

  const before = (await rolledUp('finished_total')).n;
  await sql`update wombat.runs set finished_at = finished_at - interval '40 days', started_at = started_at - interval '40 days', created_at = created_at - interval '40 days' where finished_at is not null`.execute(tdb.db);
  await agree(t, 'finished long ago');
  const deleted = await deleteFinishedRuns(tdb.db, { taskTtlDays: 30, retentionDays: 30, batchSize: 1000 });
  t.equal(deleted, 4, 'retention deletes the finished runs');
  await agree(t, 'after retention', ['created', 'current', 'finished', 'dead_letters', 'lateness_hourly']);
  t.same((await rolledUp('finished_total')).n, before, 'finished_total does not fall when retention deletes runs');
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from wombat.run_counts where kind in ('created', 'finished') and n = 0`.execute(tdb.db);
  t.equal(rows[0]!.n, 0, 'a fold drops the minutes retention emptied');
});

t.test('scheduled runs count by start lateness', async (t) => {
  await sql`truncate wombat.runs`.execute(tdb.db); // finished_total still counts the runs retention deleted
  await sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state)
            select gen_random_uuid(), 'canary', 'schedule', -n, now() - interval '1 minute', 'queued' from generate_series(1, 3) n`.execute(tdb.db);
  await agree(t, 'scheduled, not started');
  await sql`update wombat.runs set state = 'running', started_at = scheduled_for + make_interval(secs => -schedule_id * 0.3) where trigger = 'schedule'`.execute(tdb.db);
  await agree(t, 'scheduled and started');
  const rows = await readRunCounts(tdb.sql, { kind: 'lateness_hourly', windowSeconds: 3600, hourly: true });
  t.same(rows.map((r) => r.n).reduce((a, n) => a + n, 0), 3, 'three scheduled runs started within the hour');
  t.ok(rows.every((r) => r.hour instanceof Date));
  t.same(rows.map((r) => r.bucket).sort(), [117, 132, 140], 'lateness 300, 600 and 900 ms in their 5% buckets');
});

t.test('progress writes add no deltas', async (t) => {
  await sql`truncate wombat.runs`.execute(tdb.db); // finished_total still counts the runs retention deleted
  const [id] = await running(1);
  await foldRunCounts(tdb.db);
  for (let i = 1; i <= 5; i++) await applyAttemptUpdates(tdb.sql, [{ id: id!, attempts: 1, workerId: worker, progress: i / 10, progressMessage: `step ${i}` }]);
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from wombat.run_count_deltas`.execute(tdb.db);
  t.equal(rows[0]!.n, 0);
  await applyAttemptUpdates(tdb.sql, [{ id: id!, attempts: 1, workerId: worker, state: 'completed', finishedAt: now() }]);
  await agree(t, 'after progress');
});

t.test('concurrent finishers and folds keep the counts exact', async (t) => {
  const ids = await running(200);
  const batches = Array.from({ length: 20 }, (_, i) => ids.slice(i * 10, i * 10 + 10));
  const folds: Promise<number | null>[] = [];
  await Promise.all(batches.map(async (batch, i) => {
    await applyAttemptUpdates(tdb.sql, batch.map((id, k) => ({
      id, attempts: 1, workerId: worker, state: (k % 5 === 0 ? 'failed' : 'completed') as 'failed' | 'completed', finishedAt: now(), ...(k % 5 === 0 ? { error: { message: 'x' } } : {}),
    })));
    if (i % 4 === 0) folds.push(foldRunCounts(tdb.db));
  }));
  const outcomes = await Promise.all(folds);
  t.ok(outcomes.every((o) => o === null || o >= 0), 'a fold either runs or finds another one running');
  await agree(t, 'after 200 concurrent finishes');
  t.equal((await rolledUp('current')).n['canary/failed/0'], 40);
});

t.test('truncating wombat.runs empties the roll-ups', async (t) => {
  await sql`truncate wombat.runs`.execute(tdb.db);
  await agree(t, 'truncated');
  const { rows } = await sql<{ n: number }>`select (select count(*) from wombat.run_counts) + (select count(*) from wombat.run_count_deltas) as n`.execute(tdb.db);
  t.equal(Number(rows[0]!.n), 0);
});
