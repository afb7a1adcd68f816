import t from 'tap';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { backfillSchedule, cancelRun, releaseBackfills, releaseWaitingRuns } from '@wombat/core/runs';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';

/**
 * Dependencies inside a backfill, at the release pass, without workers (runs are ended by
 * hand): a backfill of B (after A) plans A's occurrences too, releases each B child only
 * once A's run of its day completed, skips it when that run failed, gives each child its
 * own schedule's job settings; and a backfill child of A releases a waiting run of B.
 */
const tdb = await createTestDatabase(t, { poolSize: 12 });
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 4 });
t.teardown(() => boss.stop({ graceful: false, close: true }));
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const day = (i: number) => new Date(today + i * DAY_MS).toISOString();
const date = (i: number) => day(i).slice(0, 10);

const schedule = async (input: object) => {
  const r = validateScheduleInput({ job: 'canary', timezone: 'UTC', ...input });
  if (!r.ok) throw new Error(r.problems.join('; '));
  return insertSchedule(tdb.db, r.value);
};
// A at 01:00, B at 00:30 and C at 02:00 each day: B's child of a day comes before the A child it waits for.
const a = await schedule({ name: 'symbols', cron: '0 1 * * *', max_retries: 0, timeout_seconds: 33 });
const b = await schedule({ name: 'prices', cron: '30 0 * * *', after: ['symbols'], max_retries: 4, timeout_seconds: 77 });
const c = await schedule({ name: 'report', cron: '0 2 * * *', after: ['prices'] });

interface Child {
  id: string;
  schedule: string;
  day: string;
  state: string;
  reason: string | null;
}
const kids = async (parentId: string): Promise<Child[]> =>
  (
    await sql<Child>`select r.id, s.name as schedule, to_char(r.scheduled_for at time zone 'UTC', 'YYYY-MM-DD') as day, r.state, r.reason
      from wombat.runs r join wombat.schedules s on s.id = r.schedule_id where r.parent_id = ${parentId} order by r.scheduled_for`.execute(tdb.db)
  ).rows;
const of = (all: Child[], name: string, i: number) => all.find((k) => k.schedule === name && k.day === date(i))!;
const end = (ids: string[], state: 'completed' | 'failed') => sql`update wombat.runs set state = ${state}, finished_at = now() where id = any(${ids}::uuid[])`.execute(tdb.db);
const runCount = async () => (await sql<{ n: number }>`select count(*)::int as n from wombat.runs`.execute(tdb.db)).rows[0]!.n;

t.test('a dry run lists the prerequisites\' occurrences, in dependency order, and records nothing', async (t) => {
  const before = await runCount();
  const answer = await backfillSchedule(tdb.db, boss, c, { from: day(-3), to: day(0), dryRun: true });
  t.same(
    answer.plan.map((p) => `${p.schedule} ${p.scheduled_for.slice(0, 10)} ${p.action}`),
    [-3, -2, -1].flatMap((i) => [`prices ${date(i)} run`, `symbols ${date(i)} run`, `report ${date(i)} run`]),
  );
  t.match(answer.plan.find((p) => p.schedule === 'symbols'), { schedule_id: a.id, job: 'canary', params: { period: { from: String, to: String } } });
  t.match(answer.notes, [/^report waits for prices \(after\): the backfill covers its prerequisites over the same range, symbols \(3 to run, 0 skipped\), prices \(3 to run, 0 skipped\)/]);
  t.equal(answer.runId, undefined);
  t.equal(await runCount(), before, 'no run recorded');
  await t.rejects(backfillSchedule(tdb.db, boss, c, { from: day(-3), to: day(0), max: 8, dryRun: true }), { code: 'backfill_too_large', message: /holds 9 occurrences of symbols, prices, report/ });
});

t.test('B\'s child of a day waits for A\'s of that day without a slot; A failing skips it; each child takes its own settings', async (t) => {
  const { runId, plan } = await backfillSchedule(tdb.db, boss, b, { from: day(-3), to: day(0), concurrency: 2 });
  const parentId = runId!;
  t.equal(plan.length, 6);
  let all = await kids(parentId);
  t.equal(all.length, 6, 'a child for each occurrence of both schedules, under one parent');
  t.same([of(all, 'symbols', -3).state, of(all, 'symbols', -2).state], ['queued', 'queued'], 'the two slots go to A\'s children');
  t.match(of(all, 'prices', -3), { state: 'held', reason: `waits for symbols of ${date(-3)} (after)` });
  t.match(of(all, 'prices', -1), { state: 'held', reason: /waits for a backfill slot/ }, 'not yet looked at: the slots were full');

  const jobs = await sql<{ id: string; retry_limit: number; expire_seconds: number }>`select id::text, retry_limit, expire_seconds from pgboss.job where id = ${of(all, 'symbols', -3).id}::uuid`.execute(tdb.db);
  t.match(jobs.rows[0], { retry_limit: 0, expire_seconds: 33 }, 'A\'s child runs with A\'s settings');

  await end([of(all, 'symbols', -3).id], 'completed');
  await end([of(all, 'symbols', -2).id], 'failed');
  await releaseBackfills(tdb.db, boss);
  all = await kids(parentId);
  t.equal(of(all, 'prices', -3).state, 'queued', 'released once A\'s run of its day completed');
  t.match(of(all, 'prices', -2), { state: 'skipped', reason: new RegExp(`^dependency_failed: prices waits for symbols, which ended failed for ${date(-2)} \\(run ${of(all, 'symbols', -2).id}\\)`) });
  t.equal(of(all, 'symbols', -1).state, 'queued', 'the other slot went to A\'s next child, not to a waiting one');
  t.equal(all.filter((k) => k.state === 'queued').length, 2, 'never more than two');
  const bJob = await sql<{ retry_limit: number; expire_seconds: number }>`select retry_limit, expire_seconds from pgboss.job where id = ${of(all, 'prices', -3).id}::uuid`.execute(tdb.db);
  t.match(bJob.rows[0], { retry_limit: 4, expire_seconds: 77 }, 'B\'s child runs with B\'s settings');

  await end([of(all, 'prices', -3).id, of(all, 'symbols', -1).id], 'completed');
  await Promise.all(Array.from({ length: 6 }, () => releaseBackfills(tdb.db, boss)));
  all = await kids(parentId);
  t.equal(of(all, 'prices', -1).state, 'queued', 'released once, whatever the number of passes');
  const jobCount = await sql<{ n: number }>`select count(*)::int as n from pgboss.job where id = ${of(all, 'prices', -1).id}::uuid`.execute(tdb.db);
  t.equal(jobCount.rows[0]!.n, 1);
  await end([of(all, 'prices', -1).id], 'completed');
  await releaseBackfills(tdb.db, boss);
  const parent = await tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', parentId).executeTakeFirstOrThrow();
  t.match(parent, {
    state: 'failed',
    progress: 1,
    progress_message: '6/6 done, 1 failed, 1 skipped (a prerequisite failed), 0 active, 0 waiting',
    error: { code: 'backfill_failed', message: '1 of 6 occurrences failed, 0 cancelled, 1 skipped (a prerequisite failed)' },
  });
});

t.test('a prerequisite occurrence completed already is skipped and counts as complete; --rerun runs it again first', async (t) => {
  const first = await backfillSchedule(tdb.db, boss, b, { from: day(-8), to: day(-7), concurrency: 1 });
  let all = await kids(first.runId!);
  await end([of(all, 'symbols', -8).id], 'completed');
  await releaseBackfills(tdb.db, boss);
  await cancelRun(tdb.db, boss, first.runId!);

  const again = await backfillSchedule(tdb.db, boss, b, { from: day(-8), to: day(-7), concurrency: 1 });
  t.same(again.plan.map((p) => [p.schedule, p.existing, p.action]), [['prices', 'none', 'run'], ['symbols', 'completed', 'skip']]);
  all = await kids(again.runId!);
  t.same(all.map((k) => [k.schedule, k.state]), [['prices', 'queued']], 'the backfill child of A that completed lets B\'s run at once');
  const busy = await backfillSchedule(tdb.db, boss, b, { from: day(-8), to: day(-7), dryRun: true, rerun: true });
  t.same(busy.plan.map((p) => [p.schedule, p.existing, p.action]), [['prices', 'in_progress', 'skip'], ['symbols', 'completed', 'run']], 'a day of B in progress is not run again, even with rerun');
  await cancelRun(tdb.db, boss, again.runId!);

  const rerun = await backfillSchedule(tdb.db, boss, b, { from: day(-8), to: day(-7), concurrency: 1, rerun: true });
  all = await kids(rerun.runId!);
  t.same(all.map((k) => [k.schedule, k.state]), [['prices', 'held'], ['symbols', 'queued']], 'with rerun, B waits for A\'s new run of the day');
});

t.test('a waiting run of B is released by a completed backfill child of A; a fan-out child of A does not count', async (t) => {
  const bf = await backfillSchedule(tdb.db, boss, a, { from: day(-12), to: day(-10), concurrency: 2 });
  const [first, second] = await kids(bf.runId!);
  await end([first!.id], 'completed');
  // A fan-out child of a run of A on day -11 is completed; B's run of that day must not go by it.
  const fan = await sql<{ id: string }>`insert into wombat.runs (id, job, trigger, schedule_id, parent_id, scheduled_for, state, params)
    values (gen_random_uuid(), 'canary', 'fanout', ${a.id}, ${second!.id}, ${day(-11)}::timestamptz + interval '2 hours', 'completed', '{}') returning id`.execute(tdb.db);
  t.ok(fan.rows[0]);
  const waiting = async (i: number) =>
    (
      await sql<{ id: string }>`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params)
        values (gen_random_uuid(), 'canary', 'schedule', ${b.id}, ${day(i)}::timestamptz + interval '30 minutes', 'waiting', '{}') returning id`.execute(tdb.db)
    ).rows[0]!.id;
  const w12 = await waiting(-12);
  const w11 = await waiting(-11);
  // The backfill child of day -11 is still queued: its waiting run of B stays (its window is long past, so it times out).
  const out = await releaseWaitingRuns(tdb.db, boss, new Date());
  t.match(out.find((o) => o.id === w12), { state: 'queued' }, 'released by the backfill child of A of its day');
  t.match(out.find((o) => o.id === w11), { state: 'skipped', code: 'dependency_timeout' }, 'the fan-out child did not release it');
});

t.test('a prerequisite with no run at all in the period and none planned counts as complete (its run deleted by retention)', async (t) => {
  const done = (i: number) =>
    sql`insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, params, finished_at)
      values (gen_random_uuid(), 'canary', 'schedule', ${a.id}, ${day(i)}::timestamptz + interval '1 hour', 'completed', '{}', now())`.execute(tdb.db);
  await done(-21);
  await done(-20);
  const { runId, plan } = await backfillSchedule(tdb.db, boss, b, { from: day(-21), to: day(-19), concurrency: 1 });
  t.same(plan.map((p) => [p.schedule, p.action]), [['prices', 'run'], ['symbols', 'skip'], ['prices', 'run'], ['symbols', 'skip']]);
  let all = await kids(runId!);
  t.same(all.map((k) => k.state), ['queued', 'held']);
  await sql`delete from wombat.runs where schedule_id = ${a.id} and scheduled_for = ${day(-20)}::timestamptz + interval '1 hour'`.execute(tdb.db);
  await end([of(all, 'prices', -21).id], 'completed');
  await releaseBackfills(tdb.db, boss);
  all = await kids(runId!);
  t.equal(of(all, 'prices', -20).state, 'queued', 'released: nothing would ever end its wait');
});
