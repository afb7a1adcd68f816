import t from 'tap';
import { createTestDatabase } from '@wombat/core/testing';
import { addSchedule, runsOf, startTestEngine, testBoss } from './helpers.ts';

const tdb = await createTestDatabase(t);
const boss = await testBoss(t, tdb);

// The engines read time from this clock, so minutes of downtime pass at once.
let shiftMs = 0;
const clock = () => Date.now() + shiftMs;
const MIN = 60_000;

t.test('after downtime, skip, once and all each do what they say, within window and cap', async (t) => {
  const common = { job: 'canary', every: '1m', overlap: 'allow', catchup_window_seconds: 600 };
  const skip = await addSchedule(tdb, { ...common, name: 'missed-skip', missed: 'skip' });
  const once = await addSchedule(tdb, { ...common, name: 'missed-once', missed: 'once' });
  const all = await addSchedule(tdb, { ...common, name: 'missed-all', missed: 'all', catchup_max: 3 });
  const windowed = await addSchedule(tdb, { ...common, name: 'missed-window', missed: 'all', catchup_max: 100, catchup_window_seconds: 150 });
  const ids = [skip, once, all, windowed].map((s) => s.id);

  // The engine starts at 5 s past a whole minute of its clock, so that however slowly it starts
  // (a busy machine) no occurrence falls due on its own before the jump below.
  const base = Math.floor(Date.now() / MIN) * MIN;
  shiftMs = base + 5_000 - Date.now();
  const first = await startTestEngine(t, tdb, boss, {}, { clock });
  // Jump to just past the next whole minute: every schedule fires on time once.
  const nextMinute = base + MIN;
  shiftMs = nextMinute + 50 - Date.now();
  await first.runPass();
  await first.stop();
  for (const id of ids) t.equal((await runsOf(tdb, id)).length, 1, 'one on-time run before the outage');

  // Down for 5 minutes and a bit: occurrences at +1..+5 min were missed.
  shiftMs = nextMinute + 5 * MIN + 10_000 - Date.now();
  const second = await startTestEngine(t, tdb, boss, {}, { clock });
  await second.runPass();
  await second.stop();

  const states = async (id: number) => (await runsOf(tdb, id)).slice(1).map((r) => r.state);
  t.same(await states(skip.id), ['missed', 'missed', 'missed', 'missed', 'missed'], 'skip: all five recorded as missed');
  t.same(await states(once.id), ['missed', 'missed', 'missed', 'missed', 'queued'], 'once: only the latest published');
  t.same(await states(all.id), ['missed', 'missed', 'queued', 'queued', 'queued'], 'all: the latest three (the cap) published');
  // Window 150 s at +5:10: +1, +2 min are older than the window; +3, +4, +5 are caught up.
  t.same(await states(windowed.id), ['missed', 'missed', 'queued', 'queued', 'queued'], 'older than the window: missed');
  const reasons = (await runsOf(tdb, windowed.id)).map((r) => r.reason);
  t.match(reasons[1], /catch-up window/);
  for (const id of ids) {
    const runs = await runsOf(tdb, id);
    t.equal(new Set(runs.map((r) => new Date(r.scheduled_for!).getTime())).size, 6, 'six distinct occurrences, each recorded once');
  }
  const s = (await tdb.db.withTables<import('@wombat/core/schedules').SchedulerTables>().selectFrom('wombat.schedules').selectAll().where('id', '=', once.id).executeTakeFirstOrThrow());
  t.equal(new Date(s.last_run_at!).getTime(), nextMinute + 5 * MIN, 'last occurrence kept on the schedule');
  t.equal(new Date(s.next_run_at!).getTime(), nextMinute + 6 * MIN, 'next occurrence kept on the schedule');
});
