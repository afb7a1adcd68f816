import t from 'tap';
import { sql } from 'kysely';
import { releaseHeldRuns, type Schedule } from '@wombat/core';
import { createTestDatabase } from '@wombat/core/testing';
import { publishBatch } from '@wombat/scheduler-engine';
import { addSchedule, runsOf, testBoss } from './helpers.ts';

const tdb = await createTestDatabase(t);
const boss = await testBoss(t, tdb);
const base = Date.parse('2026-01-01T00:00:00Z');
const at = (i: number) => new Date(base + i * 1000);
const publish = (s: Schedule, i: number) => publishBatch(tdb.db, boss, [{ schedule: s, at: at(i), action: 'publish', nextAt: at(i + 1) }]);
const states = async (s: Schedule) => (await runsOf(tdb, s.id)).map((r) => r.state);
const release = async () => (await releaseHeldRuns(tdb.db, boss)).length;
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
  t.equal(await release(), 0, 'not released while the first runs');
  t.equal(await boss.getJobById('canary', held!.runId), null, 'a held run has no job yet');
  await setState(first!.runId, 'retrying');
  t.equal(await release(), 0, 'not released while the first waits for its retry');
  await setState(first!.runId, 'completed');
  t.equal(await release(), 1, 'released once the first finished');
  t.ok(await boss.getJobById('canary', held!.runId), 'the held run now has its job');
  t.same(await states(s), ['completed', 'skipped', 'queued', 'skipped']);
  t.equal(await release(), 0, 'released once only');
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
