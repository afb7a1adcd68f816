import t from 'tap';
import { sql } from 'kysely';
import { startBoss } from '@wombat/core/platform';
import { backfillSchedule, cancelRun, cancelRuns, reconcileRuns, releaseBackfills, releaseHeldRuns } from '@wombat/core/runs';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';

/**
 * The backfill release pass on its own, without workers: children released into free slots
 * only, each once when many passes race, and untouched by the other run sweeps (overlap's
 * release of held runs, the reconciler, which would take a parent without a job for lost).
 */
const tdb = await createTestDatabase(t, { poolSize: 12 });
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 4 });
t.teardown(() => boss.stop({ graceful: false, close: true }));
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const day = (i: number) => new Date(today + i * DAY_MS).toISOString();

const def = validateScheduleInput({ name: 'daily', job: 'canary', cron: '0 0 * * *', timezone: 'UTC', overlap: 'queue-one' });
if (!def.ok) throw new Error(def.problems.join('; '));
const s = await insertSchedule(tdb.db, def.value);

const states = async (parentId: string) =>
  (await sql<{ state: string }>`select state from wombat.runs where parent_id = ${parentId} order by scheduled_for`.execute(tdb.db)).rows.map((r) => r.state);
const finish = (ids: string[]) => sql`update wombat.runs set state = 'completed', finished_at = now() where id = any(${ids}::uuid[])`.execute(tdb.db);

t.test('many passes at once release each child once and never past the concurrency', async (t) => {
  const { runId } = await backfillSchedule(tdb.db, boss, s, { from: day(-60), to: day(-20), concurrency: 3 });
  const parentId = runId!;
  // The start released the first three itself.
  const first = (await sql<{ id: string }>`select id from wombat.runs where parent_id = ${parentId} and state = 'queued'`.execute(tdb.db)).rows.map((r) => r.id);
  t.equal(first.length, 3);
  const released: string[] = [...first];
  await finish(first);
  for (let round = 0; round < 20 && (await states(parentId)).includes('held'); round++) {
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => releaseBackfills(tdb.db, boss)));
    const now = outcomes.flat().flatMap((o) => o.released);
    released.push(...now);
    const active = (await states(parentId)).filter((x) => x === 'queued').length;
    t.ok(active <= 3, `round ${round}: ${active} queued`);
    await finish(now);
  }
  await Promise.all(Array.from({ length: 4 }, () => releaseBackfills(tdb.db, boss)));
  t.equal(released.length, 40, 'forty children released');
  t.equal(new Set(released).size, 40, 'each once');
  const jobs = await sql<{ n: number }>`select count(*)::int as n from pgboss.job where id = any(${released}::uuid[])`.execute(tdb.db);
  t.equal(jobs.rows[0]!.n, 40, 'one pg-boss job each');
  const parent = await tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', parentId).executeTakeFirstOrThrow();
  t.match(parent, { state: 'completed', progress: 1, progress_message: '40/40 done, 0 failed, 0 active, 0 waiting' });
});

t.test('overlap\'s release and the reconciler leave a backfill alone', async (t) => {
  const { runId } = await backfillSchedule(tdb.db, boss, s, { from: day(-10), to: day(-7), concurrency: 1 });
  const parentId = runId!;
  t.same(await states(parentId), ['queued', 'held', 'held']);
  await sql`update wombat.runs set created_at = now() - interval '1 hour' where id = ${parentId} or parent_id = ${parentId}`.execute(tdb.db);
  t.same(await releaseHeldRuns(tdb.db, boss), [], 'queue-one releases none of the backfill\'s held children');
  await sql`update wombat.schedules set status = 'paused' where id = ${s.id}`.execute(tdb.db);
  t.same(await releaseHeldRuns(tdb.db, boss), [], 'nor skips them when the schedule is paused');
  const r = await reconcileRuns(tdb.db, boss);
  t.notOk(r?.lost.includes(parentId), 'the reconciler does not take the parent, which has no job, for lost');
  const parent = await tdb.db.selectFrom('wombat.runs').select(['state', 'error']).where('id', '=', parentId).executeTakeFirstOrThrow();
  t.same(parent, { state: 'running', error: null });
  t.same(await states(parentId), ['queued', 'held', 'held']);
});

t.test('cancelling a job type\'s running runs at once cancels a backfill of it with its children', async (t) => {
  await sql`update wombat.schedules set status = 'active' where id = ${s.id}`.execute(tdb.db);
  const { runId } = await backfillSchedule(tdb.db, boss, s, { from: day(-16), to: day(-12), concurrency: 2, rerun: true });
  t.same(await states(runId!), ['queued', 'queued', 'held', 'held']);
  const { cancelled } = await cancelRuns(tdb.db, boss, { job: 'canary', states: ['running'] });
  t.ok(cancelled >= 1, 'the running backfills are cancelled');
  t.same(await states(runId!), ['cancelled', 'cancelled', 'cancelled', 'cancelled'], 'and their children with them');
  const jobs = await sql<{ state: string }>`select j.state::text from pgboss.job j join wombat.runs r on r.id = j.id where r.parent_id = ${runId!}`.execute(tdb.db);
  t.same(jobs.rows.map((j) => j.state), ['cancelled', 'cancelled'], 'the released children\'s jobs too');
});

t.test('two backfills of overlapping ranges started together run each occurrence once; a preview shows what is in progress', async (t) => {
  // Inserts wait while both plan: each sees the other's days as not started.
  const lock = await tdb.sql.reserve();
  await lock`begin`;
  await lock`lock table wombat.runs in share row exclusive mode`;
  const starting = Promise.allSettled([
    backfillSchedule(tdb.db, boss, s, { from: day(-90), to: day(-80), concurrency: 2 }),
    backfillSchedule(tdb.db, boss, s, { from: day(-85), to: day(-75), concurrency: 2 }),
  ]);
  for (let i = 0; i < 200; i++) {
    const [w] = await tdb.sql<{ n: number }[]>`select count(*)::int as n from pg_locks where not granted and relation = 'wombat.runs'::regclass`;
    if (w!.n >= 2) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  await lock`commit`;
  lock.release();
  const started = await starting;
  const parents = started.flatMap((r) => (r.status === 'fulfilled' && r.value.runId ? [r.value.runId] : []));
  t.equal(parents.length, 2, 'both start: each has occurrences of its own');
  const children = await sql<{ at: Date; n: number }>`
    select scheduled_for as at, count(*)::int as n from wombat.runs where parent_id = any(${parents}::uuid[]) group by scheduled_for order by 1`.execute(tdb.db);
  t.equal(children.rows.length, 15, 'every day of the union has a child');
  t.same(children.rows.filter((r) => r.n !== 1), [], 'and only one');
  const preview = await backfillSchedule(tdb.db, boss, s, { from: day(-82), to: day(-78), dryRun: true });
  t.same(
    preview.plan.map((p) => [p.existing, p.action]),
    Array.from({ length: 4 }, () => ['in_progress', 'skip']),
    'a third over the same days would run none of them',
  );
  await t.rejects(backfillSchedule(tdb.db, boss, s, { from: day(-82), to: day(-78) }), { code: 'nothing_to_backfill', message: /4 are in progress/ });
  // Once they finish, the range can be backfilled again.
  for (const id of parents) await cancelRun(tdb.db, boss, id);
  const again = await backfillSchedule(tdb.db, boss, s, { from: day(-82), to: day(-78), dryRun: true });
  t.same(new Set(again.plan.map((p) => p.action)), new Set(['run']));
});
