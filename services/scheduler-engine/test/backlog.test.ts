import t from 'tap';
import { sql } from 'kysely';
import type { Schedule } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, startTestEngine, testBoss, waitFor } from './helpers.ts';

// Each case has a database, a pg-boss and engines of its own: they run side by side (the
// first works through a backlog, the others mostly wait on per-second schedules).
t.jobs = 3;

async function ownDatabase(t: { teardown(fn: () => unknown): void }) {
  const tdb = await createTestDatabase(t);
  return { tdb, boss: await testBoss(t, tdb) };
}

// The engines read time from this clock, so days of downtime pass at once.
let shiftMs = 0;
const clock = () => Date.now() + shiftMs;
const MIN = 60_000;
const DAY = 86_400_000;

t.test('a multi-day outage: missed once publishes exactly one catch-up, missed all at most catchup_max, every occurrence recorded', async (t) => {
  const { tdb, boss } = await ownDatabase(t);
  const common = { job: 'canary', overlap: 'allow' };
  const cases = [
    { name: 'sec-once', every: '1s', missed: 'once', stepMs: 1000, published: 1 },
    { name: 'sec-all', every: '1s', missed: 'all', catchup_max: 10, stepMs: 1000, published: 10 },
    { name: 'min-once', every: '1m', missed: 'once', stepMs: MIN, published: 1 },
    { name: 'min-all', every: '1m', missed: 'all', catchup_max: 10, stepMs: MIN, published: 10 },
  ];
  const schedules: Schedule[] = [];
  for (const c of cases) {
    const { stepMs: _s, published: _p, ...input } = c;
    schedules.push(await addSchedule(tdb, { ...common, ...input }));
  }

  // The engine starts at 5 s past a whole minute of its clock: however slowly it starts, no
  // minute schedule falls due on its own before the jump below.
  const base = Math.floor(Date.now() / MIN) * MIN;
  shiftMs = base + 5_000 - Date.now();
  const first = await startTestEngine(t, tdb, boss, {}, { clock });
  // Just past the next whole minute: every schedule fires on time once.
  const nextMinute = base + MIN;
  shiftMs = nextMinute + 50 - Date.now();
  await first.runPass();
  await first.stop();

  // Down for two days and a bit; with a short grace, every occurrence of the outage is late.
  shiftMs = nextMinute + 2 * DAY + 10_500 - Date.now();
  const restartMs = clock();
  const second = await startTestEngine(t, tdb, boss, { misfireGraceMs: 100 }, { clock });
  await second.runPass();
  const caughtUp = await waitFor(async () => {
    const r = await sql<{ n: number }>`
      select count(*)::int as n from wombat.schedules s
      where s.id = any(${`{${schedules.map((s) => s.id).join(',')}}`}::bigint[])
        and (select max(scheduled_for) from wombat.runs r where r.schedule_id = s.id) >= ${new Date(restartMs - MIN)}`.execute(tdb.db);
    return r.rows[0]!.n === schedules.length;
  }, 180_000, 250);
  t.ok(caughtUp, 'the engine worked through the whole backlog');
  await second.stop();

  for (const [i, c] of cases.entries()) {
    const s = schedules[i]!;
    // The outage: after the on-time run, up to the restart.
    const r = await sql<{ total: number; distinct: number; first: Date; last: Date; published: number; latest_published: Date | null }>`
      select count(*)::int as total, count(distinct scheduled_for)::int as distinct, min(scheduled_for) as first, max(scheduled_for) as last,
             count(*) filter (where state = 'queued')::int as published,
             max(scheduled_for) filter (where state = 'queued') as latest_published
      from wombat.runs where schedule_id = ${s.id} and scheduled_for > ${new Date(nextMinute)} and scheduled_for <= ${new Date(restartMs)}`.execute(tdb.db);
    const row = r.rows[0]!;
    const expected = Math.floor((restartMs - nextMinute) / c.stepMs);
    t.equal(row.total, expected, `${c.name}: every occurrence of the outage has a row`);
    t.equal(row.distinct, row.total, `${c.name}: none twice`);
    t.equal(row.published, c.published, `${c.name}: ${c.published} published for the whole backlog (found ${row.published})`);
    t.equal(new Date(row.latest_published!).getTime(), new Date(row.last).getTime(), `${c.name}: the latest occurrence is among them`);
  }
});

t.test('a slowed engine publishes nothing from a definition edited meanwhile; the occurrences it held are recorded as missed', async (t) => {
  const { tdb, boss } = await ownDatabase(t);
  const s = await addSchedule(tdb, { name: 'edited', job: 'canary', every: '1s', overlap: 'allow', missed: 'all', catchup_max: 100, params: { sleep_ms: 1 } });
  let slow = false;
  let blocked = false;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slowed = await startTestEngine(t, tdb, boss, { misfireGraceMs: 60_000 }, {
    beforePublish: async (decisions) => {
      if (!slow || !decisions.some((d) => d.schedule.id === s.id && d.action === 'publish')) return;
      blocked = true;
      await gate;
    },
  });
  t.ok(await waitFor(async () => (await sql<{ n: number }>`select count(*)::int as n from wombat.runs where schedule_id = ${s.id}`.execute(tdb.db)).rows[0]!.n >= 2, 10_000), 'publishing before the edit');
  slow = true;
  t.ok(await waitFor(async () => blocked, 10_000), 'the engine holds a planned batch');
  // Occurrences pass while it is held, then the definition changes.
  await new Promise((r) => setTimeout(r, 2_500));
  const edited = await sql<{ updated_at: Date }>`update wombat.schedules set params = '{"sleep_ms": 2}' where id = ${s.id} returning updated_at`.execute(tdb.db);
  const editedAt = new Date(edited.rows[0]!.updated_at).getTime();
  // A second engine that read the new definition publishes it.
  const fresh = await startTestEngine(t, tdb, boss, { misfireGraceMs: 60_000 });
  t.ok(
    await waitFor(async () => (await sql<{ n: number }>`select count(*)::int as n from wombat.runs where schedule_id = ${s.id} and params = '{"sleep_ms": 2}' and state = 'queued'`.execute(tdb.db)).rows[0]!.n >= 1, 10_000),
    'the new definition is published',
  );
  release();
  await new Promise((r) => setTimeout(r, 1_500));
  await slowed.stop();
  await fresh.stop();

  const stale = await sql<{ n: number }>`
    select count(*)::int as n from wombat.runs where schedule_id = ${s.id} and params = '{"sleep_ms": 1}' and state = 'queued' and published_at >= ${new Date(editedAt)}`.execute(tdb.db);
  t.equal(stale.rows[0]!.n, 0, 'nothing published from the old definition after the edit committed');
  const runs = await sql<{ at: Date; state: string }>`select scheduled_for as at, state from wombat.runs where schedule_id = ${s.id} order by scheduled_for`.execute(tdb.db);
  const instants = runs.rows.map((r) => new Date(r.at).getTime());
  t.same(instants.slice(1).filter((x, i) => x - instants[i]! !== 1000), [], 'no occurrence dropped across the edit, none twice');
  const heldMissed = runs.rows.filter((r) => r.state === 'missed' && new Date(r.at).getTime() <= editedAt);
  t.ok(heldMissed.length >= 2, `the occurrences that came while the engine was held are recorded missed (${heldMissed.length})`);
});

t.test('pausing a schedule while an engine is slowed publishes nothing more of it', async (t) => {
  const { tdb, boss } = await ownDatabase(t);
  const s = await addSchedule(tdb, { name: 'paused-while-slow', job: 'canary', every: '1s', overlap: 'allow' });
  let slow = false;
  let blocked = false;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const engine = await startTestEngine(t, tdb, boss, {}, {
    beforePublish: async (decisions) => {
      if (!slow || !decisions.some((d) => d.schedule.id === s.id && d.action === 'publish')) return;
      blocked = true;
      await gate;
    },
  });
  t.ok(await waitFor(async () => (await sql<{ n: number }>`select count(*)::int as n from wombat.runs where schedule_id = ${s.id}`.execute(tdb.db)).rows[0]!.n >= 1, 10_000));
  slow = true;
  t.ok(await waitFor(async () => blocked, 10_000));
  const paused = await sql<{ updated_at: Date }>`update wombat.schedules set status = 'paused' where id = ${s.id} returning updated_at`.execute(tdb.db);
  release();
  await new Promise((r) => setTimeout(r, 1_500));
  await engine.stop();
  const after = await sql<{ n: number }>`
    select count(*)::int as n from wombat.runs where schedule_id = ${s.id} and state = 'queued' and published_at >= ${paused.rows[0]!.updated_at}`.execute(tdb.db);
  t.equal(after.rows[0]!.n, 0, 'no job sent after the pause committed');
});
