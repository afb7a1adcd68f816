import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createTestDatabase } from '@wombat/core/testing';
import { createEngine } from '@wombat/scheduler-engine';
import { addSchedule, fastOptions, runsOf, startTestEngine, testBoss, waitFor } from './helpers.ts';

// Each case has a database, a pg-boss and engines of its own. A case that left a timer,
// a loop or a LISTEN behind would keep this file from ending: tap's timeout fails it.
t.jobs = 2;

async function ownDatabase(t: { teardown(fn: () => unknown): void }) {
  const tdb = await createTestDatabase(t);
  const boss = await testBoss(t, tdb);
  const engineRows = async () => (await sql<{ id: string; stopped: boolean }>`select id, stopped_at is not null as stopped from wombat.engines`.execute(tdb.db)).rows;
  const listeners = async () =>
    Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where datname = current_database() and query ilike 'listen %'`.execute(tdb.db)).rows[0]!.n);
  return { tdb, boss, engineRows, listeners };
}

t.test('an engine stopped while it starts publishes nothing, follows nothing and is marked stopped', async (t) => {
  const { tdb, boss, engineRows, listeners } = await ownDatabase(t);
  const schedule = await addSchedule(tdb, { name: 'every-second', job: 'canary', every: '1s', overlap: 'allow' });
  const engine = createEngine({ db: tdb.db, sql: tdb.sql, boss, log: tdb.log, options: fastOptions });
  const starting = engine.start();
  await engine.stop();
  await starting;
  await sleep(2_500);
  t.equal((await runsOf(tdb, schedule.id)).length, 0, 'no occurrence published');
  t.same(await engineRows(), [{ id: engine.id, stopped: true }], 'its heartbeat row says stopped');
  t.equal(await listeners(), 0, 'no LISTEN left open');
  t.equal(engine.status().activeSchedules, 0, 'the schedules were never read');
});

t.test('an engine stopped during a pass waits for it, then starts no other', async (t) => {
  const { tdb, boss, engineRows } = await ownDatabase(t);
  const schedule = await addSchedule(tdb, { name: 'every-second', job: 'canary', every: '1s', overlap: 'allow' });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let holding = false;
  let publishedAfterStop = 0;
  let stopped = false;
  const engine = await startTestEngine(t, tdb, boss, {}, {
    beforePublish: async () => {
      holding = true;
      await held;
    },
    onPublished: (occurrences) => {
      if (stopped) publishedAfterStop += occurrences.length;
    },
  });
  t.ok(await waitFor(async () => holding, 5_000), 'a pass is in flight, held before its transaction');
  let stopResolved = false;
  const stopping = engine.stop().then(() => (stopResolved = true));
  await sleep(300);
  t.notOk(stopResolved, 'stop waits for the pass in flight');
  release();
  await stopping;
  stopped = true;
  const runs = (await runsOf(tdb, schedule.id)).length;
  t.ok(runs >= 1, `the held pass committed (${runs} run)`);
  await sleep(2_500);
  t.equal((await runsOf(tdb, schedule.id)).length, runs, 'no pass after the stop');
  t.equal(publishedAfterStop, 0);
  t.same(await engineRows(), [{ id: engine.id, stopped: true }]);
});

t.test('starting an engine twice, or after it stopped, is refused', async (t) => {
  const { tdb, boss, listeners } = await ownDatabase(t);
  const engine = await startTestEngine(t, tdb, boss);
  t.equal(await listeners(), 1, 'a started engine listens for schedule changes');
  await t.rejects(engine.start(), { code: 'illegal_engine_transition', message: 'the engine cannot go from running to starting' });
  await engine.stop();
  t.equal(await listeners(), 0, 'and stops listening when it stops');
  await t.rejects(engine.start(), { code: 'illegal_engine_transition', message: 'the engine cannot go from stopped to starting' });
  await engine.stop(); // memoized: a second stop is the first one
});
