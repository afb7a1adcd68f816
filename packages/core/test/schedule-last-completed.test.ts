import t from 'tap';
import { sql } from 'kysely';
import { createTestDatabase, planReads } from '@wombat/core/testing';

/**
 * A schedule's latest completed run (the stale-schedule alert every round, /metrics'
 * seconds since success every scrape) is one probe of index runs_schedule_completed, however
 * many failed and skipped runs came after it: the statement's scans of wombat.runs return a
 * row or two, measured by EXPLAIN ANALYZE, where walking the schedule's runs read thousands.
 */
const tdb = await createTestDatabase(t);
const { db } = tdb;

const { rows: [s] } = await sql<{ id: number }>`
  insert into wombat.schedules (name, job, kind, every, every_seconds) values ('busy', 'canary', 'every', '1s', 1) returning id`.execute(db);
const id = s!.id;
// Two completed runs a day ago, then a streak of 6,000 failed and skipped runs, and other schedules' history.
await sql`
  insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, created_at, started_at, finished_at)
  select gen_random_uuid(), 'canary', 'schedule', ${id}, now() - make_interval(secs => i), case when i > 86000 then 'completed' when i % 2 = 0 then 'failed' else 'skipped' end,
    now() - make_interval(secs => i), now() - make_interval(secs => i), now() - make_interval(secs => i) + interval '1 second'
  from (select generate_series(1, 6000) as i union all select 86001 union all select 86002) x`.execute(db);
await sql`insert into wombat.schedules (name, job, kind, every, every_seconds) values ('other', 'canary', 'every', '1s', 1)`.execute(db);
await sql`
  insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, created_at, finished_at)
  select gen_random_uuid(), 'canary', 'schedule', (select id from wombat.schedules where name = 'other'), now() - make_interval(secs => i), 'completed', now() - make_interval(secs => i), now() - make_interval(secs => i)
  from generate_series(1, 4000) i`.execute(db);
await sql`analyze wombat.runs`.execute(db);

t.test("the latest completed run of a schedule is one index probe, whatever came after it", async (t) => {
  const lastOk = sql`select max(r.finished_at) from wombat.runs r where r.schedule_id = ${id} and r.state = 'completed'`;
  const { rows: [v] } = await sql<{ max: Date }>`${lastOk}`.execute(db);
  const { rows: [expected] } = await sql<{ at: Date }>`select max(finished_at) as at from wombat.runs where schedule_id = ${id} and state = 'completed'`.execute(db);
  t.same(v!.max, expected!.at, 'the latest completed run, past the streak');
  const read = await planReads(db, lastOk, 'runs');
  t.ok(read.rows <= 2, `rows read: ${read.rows}`);
  t.same(read.indexes, ['runs_schedule_completed']);
});

t.test("every active schedule's last success at once (the scrape's and the alert's shape) stays a probe per schedule", async (t) => {
  const read = await planReads(db, sql`
    select s.id, (select max(r.finished_at) from wombat.runs r where r.schedule_id = s.id and r.state = 'completed') as last_ok
    from wombat.schedules s where s.status = 'active'`, 'runs');
  t.ok(read.rows <= 4, `rows read for 2 schedules: ${read.rows}`);
  t.ok(read.indexes.every((i) => i === 'runs_schedule_completed'), read.indexes.join(', '));
});
