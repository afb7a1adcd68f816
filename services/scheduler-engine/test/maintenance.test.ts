import t from 'tap';
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { createTestDatabase } from '@wombat/core/testing';
import { purgeFinishedRuns } from '@wombat/scheduler-engine';
import { readRunCounts } from '@wombat/core/runs';
import { startTestEngine, testBoss, waitFor } from './helpers.ts';

const tdb = await createTestDatabase(t);

t.test('purges finished task runs after their TTL and other finished runs after retention, in batches', async (t) => {
  const day = 86_400_000;
  const rows = [
    { name: 'task-8d', trigger: 'task', state: 'completed', ageDays: 8, kept: false },
    { name: 'task-6d', trigger: 'task', state: 'failed', ageDays: 6, kept: true },
    { name: 'sched-91d', trigger: 'schedule', state: 'completed', ageDays: 91, kept: false },
    { name: 'missed-91d', trigger: 'schedule', state: 'missed', ageDays: 91, kept: false },
    { name: 'manual-89d', trigger: 'manual', state: 'failed', ageDays: 89, kept: true },
    { name: 'queued-200d', trigger: 'manual', state: 'queued', ageDays: 200, kept: true },
  ];
  for (const [i, r] of rows.entries()) {
    const at = new Date(Date.now() - r.ageDays * day);
    await tdb.db
      .insertInto('wombat.runs')
      .values({
        id: randomUUID(),
        job: 'canary',
        trigger: r.trigger as 'task',
        schedule_id: r.trigger === 'schedule' ? 1 : null,
        scheduled_for: new Date(at.getTime() + i),
        state: r.state as 'completed',
        reason: r.name,
        finished_at: r.state === 'queued' ? null : at,
      })
      .execute();
  }
  const deleted = await purgeFinishedRuns(tdb.db, { taskResultTtlDays: 7, runRetentionDays: 90, batchSize: 1 });
  t.equal(deleted, 3);
  const left = await sql<{ reason: string }>`select reason from wombat.runs order by reason`.execute(tdb.db);
  t.same(left.rows.map((r) => r.reason), rows.filter((r) => r.kept).map((r) => r.name).sort());
});

t.test('only one engine purges at a time', async (t) => {
  const held = await tdb.sql.reserve();
  t.teardown(() => held.release());
  await held`begin`;
  await held`select pg_advisory_xact_lock(hashtext('wombat.retention'))`;
  t.equal(await purgeFinishedRuns(tdb.db, { taskResultTtlDays: 7, runRetentionDays: 90 }), null, 'skips while another holds the lock');
  await held`rollback`;
  t.equal(await purgeFinishedRuns(tdb.db, { taskResultTtlDays: 7, runRetentionDays: 90 }), 0);
});

t.test('the engine folds the run roll-ups\' deltas, and the counts stay what they were', async (t) => {
  const boss = await testBoss(t, tdb);
  await sql`insert into wombat.runs (id, job, trigger, state, started_at, finished_at)
            select gen_random_uuid(), 'canary', 'task', 'completed', now() - interval '1 second', now() from generate_series(1, 5)`.execute(tdb.db);
  const deltas = async () => Number((await sql<{ n: string }>`select count(*) as n from wombat.run_count_deltas`.execute(tdb.db)).rows[0]!.n);
  t.ok((await deltas()) > 0, 'the insert left deltas');
  const before = await readRunCounts(tdb.sql, { kind: 'current' });
  await startTestEngine(t, tdb, boss, { runCountsFoldMs: 100 });
  t.ok(await waitFor(async () => (await deltas()) === 0), 'the engine folds them');
  t.same(await readRunCounts(tdb.sql, { kind: 'current' }), before);
  t.match(before, [{ job: 'canary', state: 'completed', n: 5 }]);
});
