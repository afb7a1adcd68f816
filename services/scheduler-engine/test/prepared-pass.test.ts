import t from 'tap';
import { sql } from 'kysely';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, runsOf, startTestEngine, testBoss } from './helpers.ts';

const tdb = await createTestDatabase(t, { poolSize: 10 });
const boss = await testBoss(t, tdb);

t.test('a pass written ahead of its instant publishes at the instant, not before', async (t) => {
  const s = await addSchedule(tdb, { name: 'every-second', job: 'canary', cron: '* * * * * *', overlap: 'allow', missed: 'all' });
  const committed: { scheduledMs: number; committedMs: number }[] = [];
  // The host clock itself (no correction to the database clock): the server below shares it.
  const engine = await startTestEngine(t, tdb, boss, {}, {
    clock: () => Date.now(),
    onPublished: (rows, committedAtMs) => committed.push(...rows.map((r) => ({ scheduledMs: r.scheduledFor.getTime(), committedMs: committedAtMs }))),
  });
  // Watch what other sessions can see: a run (or its job) visible before its instant was published early.
  const early: { scheduledFor: Date; seenAt: Date }[] = [];
  const until = Date.now() + 4_000;
  while (Date.now() < until) {
    const seen = await sql<{ scheduled_for: Date; seen_at: Date }>`
      select r.scheduled_for, clock_timestamp() as seen_at from wombat.runs r join pgboss.job j on j.id = r.id
      where r.schedule_id = ${s.id} order by r.scheduled_for desc limit 1`.execute(tdb.db);
    const row = seen.rows[0];
    if (row && row.scheduled_for.getTime() > row.seen_at.getTime()) early.push({ scheduledFor: row.scheduled_for, seenAt: row.seen_at });
  }
  await engine.stop();

  const runs = await runsOf(tdb, s.id);
  t.ok(runs.length >= 3, `${runs.length} occurrences published`);
  t.same(early, [], 'no run or job visible before its instant');
  t.same(
    committed.filter((c) => c.committedMs < c.scheduledMs),
    [],
    'no batch committed before its instant',
  );
  t.same(
    runs.filter((r) => r.published_at!.getTime() < r.scheduled_for!.getTime()).map((r) => r.scheduled_for),
    [],
    'published_at is the instant or later, though the rows were written before it',
  );
});
