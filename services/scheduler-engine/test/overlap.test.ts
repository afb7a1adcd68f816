import t from 'tap';
import { sql } from 'kysely';
import type { Schedule } from '@wombat/core/schedules';
import { releaseHeldRuns } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { publishBatch } from '@wombat/scheduler-engine';
import { addSchedule, runsOf, startTestEngine, testBoss, waitFor } from './helpers.ts';

const tdb = await createTestDatabase(t);
const boss = await testBoss(t, tdb);
const base = Date.parse('2026-01-01T00:00:00Z');
const at = (i: number) => new Date(base + i * 1000);
const publish = (s: Schedule, i: number) => publishBatch(tdb.db, boss, [{ schedule: s, at: at(i), action: 'publish', nextAt: at(i + 1) }]);
const states = async (s: Schedule) => (await runsOf(tdb, s.id)).map((r) => r.state);
const release = async () => (await releaseHeldRuns(tdb.db, boss)).filter((r) => r.state === 'queued').length;
const setState = (runId: string, state: string) => sql`update wombat.runs set state = ${state} where id = ${runId}`.execute(tdb.db);

t.test('overlap allow publishes every occurrence', async (t) => {
  const s = await addSchedule(tdb, { name: 'allow', job: 'canary', every: '1s', overlap: 'allow' });
  for (let i = 0; i < 3; i++) await publish(s, i);
  t.same(await states(s), ['queued', 'queued', 'queued']);
});

t.test('overlap skip records an occurrence as skipped while a run is queued or running', async (t) => {
  const s = await addSchedule(tdb, { name: 'skip', job: 'canary', every: '1s', overlap: 'skip' });
  const [first] = await publish(s, 0);
  await publish(s, 1);
  await setState(first!.runId, 'running');
  await publish(s, 2);
  await setState(first!.runId, 'retrying');
  await publish(s, 3);
  await setState(first!.runId, 'completed');
  await publish(s, 4);
  t.same(await states(s), ['completed', 'skipped', 'skipped', 'skipped', 'queued']);
  const skipped = (await runsOf(tdb, s.id))[1]!;
  t.match(skipped.reason, /overlap skip/);
  t.ok(skipped.finished_at, 'a skipped occurrence is finished at once');
  t.equal(await boss.getJobById('canary', skipped.id), null, 'a skipped occurrence has no job');
});

t.test('overlap queue-one keeps one run waiting and holds it until the running one ends', async (t) => {
  const s = await addSchedule(tdb, { name: 'queue-one', job: 'canary', every: '1s', overlap: 'queue-one' });
  const [first] = await publish(s, 0);
  await publish(s, 1); // first still queued: this one would be a second waiter
  await setState(first!.runId, 'running');
  const [held] = await publish(s, 2);
  await publish(s, 3); // one is already waiting
  t.same(await states(s), ['running', 'skipped', 'held', 'skipped']);
  t.match((await runsOf(tdb, s.id))[2]!.reason, /waits for the running \(or retrying\) run of its schedule/, 'a held run says why it waits');
  t.equal(await release(), 0, 'not released while the first runs');
  t.equal(await boss.getJobById('canary', held!.runId), null, 'a held run has no job yet');
  await setState(first!.runId, 'retrying');
  t.equal(await release(), 0, 'not released while the first waits for its retry');
  await setState(first!.runId, 'completed');
  t.equal(await release(), 1, 'released once the first finished');
  t.ok(await boss.getJobById('canary', held!.runId), 'the held run now has its job');
  t.same(await states(s), ['completed', 'skipped', 'queued', 'skipped']);
  t.equal((await runsOf(tdb, s.id))[2]!.reason, null, 'and no longer once released');
  t.equal(await release(), 0, 'released once only');
});

t.test('a held run of a paused or deleted schedule ends skipped with the reason, without waiting for the running one', async (t) => {
  for (const change of ['pause', 'delete'] as const) {
    const s = await addSchedule(tdb, { name: `queue-one-${change}`, job: 'canary', every: '1s', overlap: 'queue-one' });
    const [first] = await publish(s, 0);
    await setState(first!.runId, 'running');
    const [held] = await publish(s, 1);
    t.same(await states(s), ['running', 'held']);
    if (change === 'pause') await sql`update wombat.schedules set status = 'paused' where id = ${s.id}`.execute(tdb.db);
    else await sql`delete from wombat.schedules where id = ${s.id}`.execute(tdb.db);
    const outcome = await releaseHeldRuns(tdb.db, boss);
    t.match(outcome, [{ id: held!.runId, state: 'skipped', reason: change === 'pause' ? /schedule paused while the run was held/ : /schedule deleted while the run was held/ }]);
    t.same(await states(s), ['running', 'skipped'], `${change}: the held run is skipped while the first still runs`);
    const row = (await runsOf(tdb, s.id))[1]!;
    t.ok(row.finished_at, 'and finished');
    t.equal(await boss.getJobById('canary', held!.runId), null, `${change}: it never gets a job`);
    await setState(first!.runId, 'completed');
    t.equal(await release(), 0, 'nothing is released later either');
  }
});

t.test('a held run of an edited schedule runs the current definition', async (t) => {
  const s = await addSchedule(tdb, { name: 'queue-one-edit', job: 'canary', every: '1s', overlap: 'queue-one', params: { sleep_ms: 1 } });
  const [first] = await publish(s, 0);
  await setState(first!.runId, 'running');
  const [held] = await publish(s, 1);
  await sql`update wombat.schedules set params = '{"sleep_ms":99}', timeout_seconds = 77 where id = ${s.id}`.execute(tdb.db);
  t.equal(await release(), 0, 'still held while the first runs');
  await setState(first!.runId, 'completed');
  t.equal(await release(), 1);
  const job = await boss.getJobById('canary', held!.runId);
  t.same(job?.data, { sleep_ms: 99 }, 'the job carries the params the schedule has now');
  t.equal(job?.expireInSeconds, 77, 'and its timeout');
  const run = (await runsOf(tdb, s.id))[1]!;
  t.same(run.params, { sleep_ms: 99 }, 'the run records what it runs');
});

t.test('the engine ends a held run once its queue-one schedule is paused, though no queue-one schedule is left', async (t) => {
  // A database of its own: the engine publishes every schedule it finds.
  const own = await createTestDatabase(t);
  const ownBoss = await testBoss(t, own);
  const s = await addSchedule(own, { name: 'queue-one-paused', job: 'canary', every: '1s', overlap: 'queue-one' });
  await startTestEngine(t, own, ownBoss);
  // No worker: the first run is marked running by hand, and the next one is held behind it.
  t.ok(await waitFor(async () => (await runsOf(own, s.id)).length > 0), 'the first run is published');
  await sql`update wombat.runs set state = 'running', started_at = now() where schedule_id = ${s.id} and state = 'queued'`.execute(own.db);
  const held = async () => (await runsOf(own, s.id)).find((r) => r.state === 'held');
  t.ok(await waitFor(async () => (await held()) !== undefined), 'a run is held behind the running one');
  const waiting = (await held())!;
  await sql`update wombat.schedules set status = 'paused' where id = ${s.id}`.execute(own.db);
  t.ok(await waitFor(async () => (await runsOf(own, s.id)).every((r) => r.state !== 'held'), 5_000), 'no run is left held after the pause');
  const after = (await runsOf(own, s.id)).find((r) => r.id === waiting.id)!;
  t.match(after, { state: 'skipped', reason: /schedule paused while the run was held/ });
});

t.test('a batch spanning many occurrences of one schedule applies overlap within the batch', async (t) => {
  const s = await addSchedule(tdb, { name: 'skip-batch', job: 'canary', every: '1s', overlap: 'skip' });
  await publishBatch(tdb.db, boss, [0, 1, 2].map((i) => ({ schedule: s, at: at(i), action: 'publish' as const, nextAt: at(i + 1) })));
  t.same(await states(s), ['queued', 'skipped', 'skipped']);
});

t.test('an occurrence already recorded is not published again', async (t) => {
  const s = await addSchedule(tdb, { name: 'once-only', job: 'canary', every: '1s', overlap: 'allow' });
  const first = await publish(s, 0);
  const second = await publish(s, 0);
  t.equal(first.length, 1);
  t.same(second, [], 'the second attempt inserts nothing and sends nothing');
  const jobs = await sql<{ n: number }>`select count(*)::int as n from pgboss.job j join wombat.runs r on r.id = j.id where r.schedule_id = ${s.id}`.execute(tdb.db);
  t.equal(jobs.rows[0]!.n, 1);
});
