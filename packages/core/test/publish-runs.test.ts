import t from 'tap';
import { randomUUID } from 'node:crypto';
import { DatabaseTimeoutError, startBoss } from '@wombat/core/platform';
import { publishRuns } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log });
t.teardown(() => boss.stop({ graceful: false, close: true }));

t.test('publishRuns records the runs and their pg-boss jobs under one id each, with their settings', async (t) => {
  const parent = randomUUID();
  const scheduledFor = new Date('2026-01-02T03:04:05.000Z');
  const ids = await publishRuns(tdb.db, boss, [
    { job: 'canary', params: { sleep_ms: 5 }, trigger: 'task', timeoutSeconds: 7, retryLimit: 2, retryDelaySeconds: 3 },
    { job: 'canary', params: {}, trigger: 'fanout', parentId: parent, scheduleId: 42, scheduledFor, retryOf: parent },
  ]);
  t.equal(ids.length, 2);
  const runs = await tdb.db.selectFrom('wombat.runs').selectAll().where('id', 'in', ids).execute();
  const first = runs.find((r) => r.id === ids[0])!;
  const second = runs.find((r) => r.id === ids[1])!;
  t.match(first, { job: 'canary', trigger: 'task', state: 'queued', params: { sleep_ms: 5 }, schedule_id: null, parent_id: null, retry_of: null });
  t.ok(first.published_at instanceof Date && first.scheduled_for instanceof Date, 'published now, meant for now');
  t.match(second, { trigger: 'fanout', parent_id: parent, schedule_id: 42, retry_of: parent, params: {} });
  t.equal(second.scheduled_for?.toISOString(), scheduledFor.toISOString());
  const job1 = await boss.getJobById('canary', ids[0]!);
  const job2 = await boss.getJobById('canary', ids[1]!);
  t.match(job1, { id: ids[0], data: { sleep_ms: 5 }, expireInSeconds: 7, retryLimit: 2, retryDelay: 3 });
  t.equal(job2?.id, ids[1]);
});

t.test('publishRuns writes nothing when any run cannot be written', async (t) => {
  const [taken] = await publishRuns(tdb.db, boss, [{ job: 'canary', params: {}, trigger: 'task' }]);
  const fresh = randomUUID();
  await t.rejects(
    publishRuns(tdb.db, boss, [
      { job: 'canary', params: {}, trigger: 'task', id: fresh },
      { job: 'canary', params: {}, trigger: 'task', id: taken! },
    ]),
    { code: '23505' },
    'a run id already recorded fails the statement',
  );
  t.equal(await boss.getJobById('canary', fresh), null, 'the other run has no job');
  t.same(await tdb.db.selectFrom('wombat.runs').select('id').where('id', '=', fresh).execute(), [], 'and no run');
});

t.test('publishRuns past its notAfter rolls back and rejects as a database deadline', async (t) => {
  const id = randomUUID();
  const err = await publishRuns(tdb.db, boss, [{ job: 'canary', params: {}, trigger: 'task', id }], { notAfter: new Date(Date.now() - 1) }).catch((e: unknown) => e);
  t.ok(err instanceof DatabaseTimeoutError, `rejects with DatabaseTimeoutError (${String(err)})`);
  t.equal(await boss.getJobById('canary', id), null, 'no job');
  t.same(await tdb.db.selectFrom('wombat.runs').select('id').where('id', '=', id).execute(), [], 'no run');
  const [ok] = await publishRuns(tdb.db, boss, [{ job: 'canary', params: {}, trigger: 'task' }], { notAfter: new Date(Date.now() + 60_000) });
  t.ok(await boss.getJobById('canary', ok!), 'a notAfter still ahead commits');
});

t.test('publishRuns wakes an idle worker through NOTIFY', async (t) => {
  const worker = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log });
  t.teardown(() => worker.stop({ graceful: false, close: true }));
  const seen: string[] = [];
  let wake: () => void = () => {};
  const woken = new Promise<void>((resolve) => (wake = resolve));
  // Polls once a minute: only the NOTIFY can bring the job within the test's wait.
  await worker.work('backtest', { notifyPollingIntervalSeconds: 60, pollingIntervalSeconds: 60 }, async (jobs) => {
    seen.push(...jobs.map((j) => j.id));
    wake();
  });
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the worker's first (empty) fetch is over
  const sent = Date.now();
  const [id] = await publishRuns(tdb.db, boss, [{ job: 'backtest', params: {}, trigger: 'task' }]);
  const outcome = await Promise.race([woken.then(() => 'woken'), new Promise((resolve) => setTimeout(() => resolve('timeout'), 20_000))]);
  t.equal(outcome, 'woken', `the worker got the job ${Date.now() - sent} ms after it was sent`);
  t.same(seen, [id]);
});

t.test('publishRuns takes runs of one job type', async (t) => {
  await t.rejects(
    publishRuns(tdb.db, boss, [
      { job: 'canary', params: {}, trigger: 'task' },
      { job: 'backtest', params: {}, trigger: 'task' },
    ]),
    /one job type/,
  );
});
