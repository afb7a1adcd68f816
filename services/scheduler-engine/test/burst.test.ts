import t from 'tap';
import { sql } from 'kysely';
import type { SchedulerTables } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { startTestEngine, testBoss } from './helpers.ts';

const tdb = await createTestDatabase(t, { poolSize: 10 });
const boss = await testBoss(t, tdb);

let shiftMs = 0;
const clock = () => Date.now() + shiftMs;
const MIN = 60_000;

t.test('a burst spanning many batches is published once by two racing engines, with last/next kept', async (t) => {
  // 330 schedules due at the same instant: several batches on several lanes per engine.
  await sql`insert into wombat.schedules (name, job, kind, every, every_seconds, overlap, missed)
            select 'burst-' || i, 'canary', 'every', '1m', 60, case when i % 3 = 0 then 'skip' else 'allow' end, 'once'
            from generate_series(1, 330) i`.execute(tdb.db);
  const won = { a: 0, b: 0 };
  // The engines start at 5 s past a whole minute of their clock: however slowly they start, no
  // occurrence falls due on its own before the jump below.
  const base = Math.floor(Date.now() / MIN) * MIN;
  shiftMs = base + 5_000 - Date.now();
  const a = await startTestEngine(t, tdb, boss, {}, { clock, onPublished: (p) => (won.a += p.length) });
  const b = await startTestEngine(t, tdb, boss, {}, { clock, onPublished: (p) => (won.b += p.length) });
  const nextMinute = base + MIN;
  shiftMs = nextMinute + 50 - Date.now();
  await Promise.all([a.runPass(), b.runPass()]);
  await Promise.all([a.stop(), b.stop()]);

  const counts = (
    await sql<{ runs: number; jobs: number; orphans: number; schedules: number; dupes: number }>`
      select
        (select count(*)::int from wombat.runs where trigger = 'schedule' and state = 'queued' and scheduled_for = ${new Date(nextMinute)}) as runs,
        (select count(*)::int from pgboss.job where name = 'canary') as jobs,
        (select count(*)::int from wombat.runs r where not exists (select 1 from pgboss.job j where j.id = r.id)) as orphans,
        (select count(distinct schedule_id)::int from wombat.runs) as schedules,
        (select count(*)::int from (select schedule_id from wombat.runs group by 1 having count(*) > 1) d) as dupes`.execute(tdb.db)
  ).rows[0]!;
  t.equal(counts.runs, 330, 'every schedule published its occurrence');
  t.equal(counts.schedules, 330);
  t.equal(counts.dupes, 0, 'no occurrence recorded twice');
  t.equal(counts.jobs, 330, 'one job per run');
  t.equal(counts.orphans, 0, 'every run has its job');
  t.equal(won.a + won.b, 330, 'each run row was inserted by exactly one engine');

  const rows = await tdb.db.withTables<SchedulerTables>().selectFrom('wombat.schedules').select(['last_run_at', 'next_run_at', 'last_run_id']).execute();
  t.ok(rows.every((r) => new Date(r.last_run_at!).getTime() === nextMinute), 'last_run_at recorded for every schedule');
  t.ok(rows.every((r) => new Date(r.next_run_at!).getTime() === nextMinute + MIN), 'next_run_at advanced for every schedule');
  t.ok(rows.every((r) => r.last_run_id !== null));
});
