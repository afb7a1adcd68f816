import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { createTestDatabase, testAdminUrl } from '@wombat/core/testing';
import { addSchedule, runsOf, startTestEngine, testBoss, waitFor } from './helpers.ts';

const tdb = await createTestDatabase(t);
const boss = await testBoss(t, tdb);
const admin = postgres(testAdminUrl(), { max: 1, onnotice: () => {} });
t.teardown(() => admin.end());

async function setReachable(reachable: boolean) {
  await admin.unsafe(`alter database "${tdb.name}" with allow_connections ${reachable}`);
  if (!reachable) await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${tdb.name} and pid <> pg_backend_pid()`;
}

t.test('survives Postgres going away, reconnects, and catches up per policy', async (t) => {
  t.teardown(() => setReachable(true));
  const s = await addSchedule(tdb, { name: 'through-outage', job: 'canary', every: '1s', overlap: 'allow', missed: 'once' });
  await startTestEngine(t, tdb, boss, { misfireGraceMs: 300, heartbeatIntervalMs: 200 });
  t.ok(await waitFor(async () => (await runsOf(tdb, s.id)).length >= 2, 5_000), 'runs before the outage');

  await setReachable(false);
  await sleep(3_500);
  await setReachable(true);
  t.ok(
    await waitFor(async () => (await runsOf(tdb, s.id).catch(() => [])).filter((r) => r.state === 'missed').length >= 1, 10_000),
    'occurrences during the outage are recorded as missed',
  );
  const recoveredAt = Date.now();
  t.ok(await waitFor(async () => (await runsOf(tdb, s.id)).some((r) => new Date(r.scheduled_for!).getTime() > recoveredAt + 1000), 5_000), 'publishing resumes');

  const runs = await runsOf(tdb, s.id);
  const instants = runs.map((r) => new Date(r.scheduled_for!).getTime());
  t.same(instants.slice(1).filter((x, i) => x - instants[i]! !== 1000), [], 'every occurrence recorded, none twice, none lost');
  const missedIdx = runs.map((r, i) => (r.state === 'missed' ? i : -1)).filter((i) => i >= 0);
  t.equal(runs[missedIdx.at(-1)! + 1]?.state, 'queued', 'policy once: the latest missed occurrence is published after the outage');
});

t.test('occurrences passed while the event loop was blocked follow the missed policy', async (t) => {
  const s = await addSchedule(tdb, { name: 'blocked-loop', job: 'canary', every: '1s', overlap: 'allow', missed: 'skip' });
  await startTestEngine(t, tdb, boss, { misfireGraceMs: 300 });
  t.ok(await waitFor(async () => (await runsOf(tdb, s.id)).length >= 1, 5_000));
  const until = Date.now() + 2_600;
  while (Date.now() < until) {
    // Busy: no timer can fire.
  }
  t.ok(await waitFor(async () => (await runsOf(tdb, s.id)).filter((r) => r.state === 'missed').length >= 2, 5_000), 'policy skip: recorded as missed');
  const runs = await runsOf(tdb, s.id);
  const instants = runs.map((r) => new Date(r.scheduled_for!).getTime());
  t.same(instants.slice(1).filter((x, i) => x - instants[i]! !== 1000), [], 'no occurrence lost or doubled');
  t.ok(runs.filter((r) => r.state === 'missed').every((r) => /policy skip/.test(r.reason ?? '')));
});
