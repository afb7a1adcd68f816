import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { queueOptions } from '@wombat/core/jobs';
import { listEngines } from '@wombat/core/schedules';
import { triggerSchedule } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, runsOf, startTestEngine, testBoss, waitFor } from './helpers.ts';

// Each case has a database, a pg-boss and an engine of its own, and spends most of its
// time watching per-second schedules: they run side by side.
t.jobs = 3;

async function ownDatabase(t: { teardown(fn: () => unknown): void }) {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  const idOf = async (name: string): Promise<number> => {
    const r = await sql<{ id: number }>`select id from wombat.schedules where name = ${name}`.execute(tdb.db);
    return r.rows[0]!.id;
  };
  const count = async (id: number) => (await runsOf(tdb, id)).length;
  return { tdb, boss, idOf, count };
}

t.test('follows a schedule inserted, edited, paused and deleted in SQL without a restart', async (t) => {
  const { tdb, boss, idOf, count } = await ownDatabase(t);
  let id = 0;
  // The periodic reconcile is an hour away: only notifications can explain what follows.
  const engine = await startTestEngine(t, tdb, boss, { reconcileIntervalMs: 3_600_000 });
  const nextRunAt = async () => (await sql<{ next_run_at: Date | null }>`select next_run_at from wombat.schedules where id = ${id}`.execute(tdb.db)).rows[0]?.next_run_at;
  await sql`insert into wombat.schedules (name, job, kind, every, every_seconds, overlap, params)
            values ('sql-made', 'canary', 'every', '1s', 1, 'allow', '{}')`.execute(tdb.db);
  id = await idOf('sql-made');
  t.ok(await waitFor(async () => (await count(id)) >= 2, 5_000), 'an inserted schedule runs');

  await sql`update wombat.schedules set kind = 'cron', every = null, every_seconds = null, cron = '*/2 * * * * *' where id = ${id}`.execute(tdb.db);
  await sleep(200);
  const editedAt = Date.now();
  t.ok(await waitFor(async () => (await runsOf(tdb, id)).filter((r) => new Date(r.scheduled_for!).getTime() > editedAt).length >= 2, 6_000));
  const after = (await runsOf(tdb, id)).filter((r) => new Date(r.scheduled_for!).getTime() > editedAt);
  t.ok(after.every((r) => new Date(r.scheduled_for!).getUTCSeconds() % 2 === 0), 'an edited schedule follows its new cron');

  await sql`update wombat.schedules set status = 'paused', paused_reason = 'test' where id = ${id}`.execute(tdb.db);
  t.ok(await waitFor(async () => (await nextRunAt()) === null, 5_000), 'a paused schedule has no next occurrence');
  await sleep(300); // a pass already under way may still commit
  const paused = await count(id);
  await sleep(2_300);
  t.equal(await count(id), paused, 'a paused schedule publishes nothing');

  await sql`update wombat.schedules set status = 'active' where id = ${id}`.execute(tdb.db);
  t.ok(await waitFor(async () => (await count(id)) > paused, 5_000), 'a resumed schedule runs again');
  const runs = await runsOf(tdb, id);
  t.notOk(runs.some((r) => r.state === 'missed'), 'the paused time is not caught up as missed');

  await sql`delete from wombat.schedules where id = ${id}`.execute(tdb.db);
  t.ok(await waitFor(async () => engine.status().activeSchedules === 0, 5_000), 'the engine drops a deleted schedule');
  await sleep(300);
  const deleted = await count(id);
  await sleep(2_300);
  t.equal(await count(id), deleted, 'a deleted schedule publishes nothing; its history stays');
});

t.test('invalid definitions written in SQL are refused and the engine keeps going', async (t) => {
  const { tdb, boss, idOf, count } = await ownDatabase(t);
  const engine = await startTestEngine(t, tdb, boss);
  const healthy = await addSchedule(tdb, { name: 'healthy', job: 'canary', every: '1s', overlap: 'allow' });
  // What the database's own checks (migration 0012) let through, the engine refuses: a cron
  // of five fields that croner rejects, a zone PostgreSQL knows and Intl does not, params.
  await sql`insert into wombat.schedules (name, job, kind, cron) values ('bad-cron', 'canary', 'cron', '61 * * * *')`.execute(tdb.db);
  await sql`insert into wombat.schedules (name, job, kind, cron, timezone) values ('bad-zone', 'canary', 'cron', '* * * * * *', 'MSK')`.execute(tdb.db);
  await sql`insert into wombat.schedules (name, job, kind, cron, params) values ('bad-params', 'fetch-candles', 'cron', '* * * * * *', '{"x":1}')`.execute(tdb.db);
  await t.rejects(sql`insert into wombat.schedules (name, job, kind, cron) values ('bad-job', 'mine-bitcoin', 'cron', '* * * * * *')`.execute(tdb.db), {
    message: /job 'mine-bitcoin' is not a job type/,
  });
  await engine.reconcile();
  const before = await count(healthy.id);
  t.ok(await waitFor(async () => (await count(healthy.id)) >= before + 2, 5_000), 'a valid schedule keeps running');
  for (const name of ['bad-cron', 'bad-zone', 'bad-params']) t.equal(await count(await idOf(name)), 0, `${name} never runs`);
  t.equal(engine.status().activeSchedules >= 1, true);
});

t.test('with the scheduler disabled the engine publishes nothing, says so, and manual triggers work', async (t) => {
  const { tdb, boss, count } = await ownDatabase(t);
  const s = await addSchedule(tdb, { name: 'while-disabled', job: 'canary', every: '1s', overlap: 'allow', status: 'paused' });
  const engine = await startTestEngine(t, tdb, boss, { enabled: false });
  await sql`update wombat.schedules set status = 'active' where id = ${s.id}`.execute(tdb.db);
  await sleep(2_200);
  t.equal(await count(s.id), 0, 'no occurrence published');
  const mine = (await listEngines(tdb.db)).find((e) => e.id === engine.id);
  t.equal(mine?.enabled, false, 'the heartbeat row says disabled');
  t.equal(mine?.alive, true);
  const runId = await triggerSchedule(tdb.db, boss, s.id);
  const runs = await runsOf(tdb, s.id);
  t.same(runs.map((r) => [r.id, r.trigger]), [[runId, 'manual']], 'the manual run is published');
  await engine.stop();
  t.ok((await listEngines(tdb.db)).find((e) => e.id === engine.id)?.stoppedAt, 'a stopped engine says so');
});

t.test('a schedule whose publication fails does not hold up the others', async (t) => {
  const { tdb, boss, count } = await ownDatabase(t);
  const params = { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2025-01-01T00:00:00Z', to: '2025-02-01T00:00:00Z' };
  const broken = await addSchedule(tdb, { name: 'no-queue', job: 'backtest', every: '1s', overlap: 'allow', missed: 'all', params });
  // Its queue is gone (after the schedule was made: the database refuses a schedule of a job
  // type without a queue): every send for this schedule fails, until the queue is back.
  await boss.deleteQueue('backtest');
  const fine = await addSchedule(tdb, { name: 'has-queue', job: 'canary', every: '1s', overlap: 'allow' });
  await startTestEngine(t, tdb, boss, { misfireGraceMs: 60_000 });
  t.ok(await waitFor(async () => (await count(fine.id)) >= 3, 6_000), 'the healthy schedule keeps publishing');
  t.equal(await count(broken.id), 0, 'nothing half-recorded for the failing one');
  await boss.createQueue('backtest', queueOptions('backtest'));
  t.ok(await waitFor(async () => (await count(broken.id)) >= 2, 8_000), 'it catches up once it can publish again');
});

t.test('a full re-read follows every schedule across its pages, and forgets deleted ones', async (t) => {
  const { tdb, boss } = await ownDatabase(t);
  // 1,234 schedules: more than two pages of the re-read, the last one partial.
  await sql`insert into wombat.schedules (name, job, kind, times, timezone)
            select 'paged-' || i, 'canary', 'times', array['03:00'], 'Asia/Seoul' from generate_series(1, 1234) i`.execute(tdb.db);
  const before = (await sql<{ n: number }>`select count(*)::int as n from wombat.schedules where status = 'active'`.execute(tdb.db)).rows[0]!.n;
  const engine = await startTestEngine(t, tdb, boss, { reconcileIntervalMs: 3_600_000 });
  t.equal(engine.status().activeSchedules, before, 'every active schedule has a slot after start');
  const unset = await sql<{ n: number }>`select count(*)::int as n from wombat.schedules where name like 'paged-%' and next_run_at is null`.execute(tdb.db);
  t.equal(unset.rows[0]!.n, 0, 'every page had its next occurrence recorded');
  const next = await sql<{ next_run_at: Date }>`select distinct next_run_at from wombat.schedules where name like 'paged-%'`.execute(tdb.db);
  t.equal(next.rows.length, 1, 'schedules alike share one next occurrence');
  t.equal(new Date(next.rows[0]!.next_run_at).getUTCHours(), 18, '03:00 in Seoul is 18:00 UTC');

  // Deleted in SQL while notifications are not followed: only the full read can tell.
  await sql`alter table wombat.schedules disable trigger user`.execute(tdb.db);
  await sql`delete from wombat.schedules where name like 'paged-%' and right(name, 1) = '7'`.execute(tdb.db);
  await sql`alter table wombat.schedules enable trigger user`.execute(tdb.db);
  await engine.reconcile();
  const left = (await sql<{ n: number }>`select count(*)::int as n from wombat.schedules where status = 'active'`.execute(tdb.db)).rows[0]!.n;
  t.equal(engine.status().activeSchedules, left, 'deleted schedules are forgotten by the full read');
  t.ok(left < before, 'some schedules were deleted');
});
