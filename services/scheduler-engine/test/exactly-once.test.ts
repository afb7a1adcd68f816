import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, runsOf, startTestEngine, testBoss } from './helpers.ts';

const tdb = await createTestDatabase(t, { poolSize: 10 });
const boss = await testBoss(t, tdb);

t.test('publishes each occurrence once with three engines on seconds-level schedules', async (t) => {
  const schedules = await Promise.all([
    addSchedule(tdb, { name: 'cron-1s-a', job: 'canary', cron: '* * * * * *', overlap: 'allow', missed: 'all', catchup_max: 1000 }),
    addSchedule(tdb, { name: 'cron-1s-b', job: 'canary', cron: '* * * * * *', overlap: 'allow', missed: 'all', catchup_max: 1000, timezone: 'Europe/Berlin' }),
    addSchedule(tdb, { name: 'every-1s', job: 'canary', every: '1s', overlap: 'allow', missed: 'all', catchup_max: 1000 }),
    addSchedule(tdb, { name: 'cron-2s', job: 'canary', cron: '*/2 * * * * *', overlap: 'allow', missed: 'all', catchup_max: 1000 }),
  ]);
  // Many more schedules firing at the same instants: the engines contend on every batch.
  const crowd = [];
  for (let i = 0; i < 40; i++) crowd.push(await addSchedule(tdb, { name: `crowd-${i}`, job: 'canary', cron: '* * * * * *', overlap: 'allow', missed: 'all', catchup_max: 1000 }));
  const opts = { misfireGraceMs: 60_000 };
  const won = { a: 0, b: 0, c: 0 };
  // a and b race for every occurrence at the same instant; c's host clock runs 300 ms
  // slow: exactly-once must not depend on clocks agreeing.
  const a = await startTestEngine(t, tdb, boss, opts, { onPublished: (p) => (won.a += p.length) });
  const b = await startTestEngine(t, tdb, boss, opts, { onPublished: (p) => (won.b += p.length) });
  const c = await startTestEngine(t, tdb, boss, opts, { clock: () => Date.now() - 300, onPublished: (p) => (won.c += p.length) });
  await sleep(6_500);
  await Promise.all([a.stop(), b.stop(), c.stop()]);

  t.comment(`occurrences recorded by engine a ${won.a}, b ${won.b}, c ${won.c}`);
  const total = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where trigger = 'schedule'`.execute(tdb.db);
  t.equal(won.a + won.b + won.c, total.rows[0]!.n, 'each run row was inserted by exactly one engine');
  const crowdCounts = await Promise.all(crowd.map(async (s) => (await runsOf(tdb, s.id)).length));
  t.ok(crowdCounts.every((n) => n >= 5), 'every crowded schedule ran each second');
  for (const s of [...schedules, ...crowd]) {
    const runs = await runsOf(tdb, s.id);
    const instants = runs.map((r) => new Date(r.scheduled_for!).getTime());
    if (!s.name.startsWith('crowd')) t.ok(runs.length >= (s.name === 'cron-2s' ? 2 : 5), `${s.name}: ${runs.length} occurrences recorded`);
    t.equal(new Set(instants).size, instants.length, `${s.name}: one run row per occurrence`);
    const step = s.name === 'cron-2s' ? 2000 : 1000;
    const gaps = instants.slice(1).filter((x, i) => x - instants[i]! !== step);
    t.same(gaps, [], `${s.name}: no occurrence skipped between the first and the last`);
    t.ok(runs.every((r) => r.state === 'queued' && r.published_at !== null), `${s.name}: every occurrence published`);
  }
  const perRun = await sql<{ runs: number; jobs: number; orphans: number; dupes: number }>`
    select
      (select count(*)::int from wombat.runs where trigger = 'schedule') as runs,
      (select count(*)::int from pgboss.job where name = 'canary') as jobs,
      (select count(*)::int from wombat.runs r where trigger = 'schedule' and not exists (select 1 from pgboss.job j where j.id = r.id)) as orphans,
      (select count(*)::int from (select schedule_id, scheduled_for from wombat.runs group by 1, 2 having count(*) > 1) d) as dupes`.execute(tdb.db);
  const counts = perRun.rows[0]!;
  t.equal(counts.jobs, counts.runs, 'one pg-boss job per run row');
  t.equal(counts.orphans, 0, 'every run row has its job');
  t.equal(counts.dupes, 0, 'no occurrence recorded twice');
});
