import t from 'tap';
import { sql } from 'kysely';
import { PassThrough } from 'node:stream';
import { createLogger, startBoss } from '@wombat/core/platform';
import { checkJobParams } from '@wombat/core/jobs';
import { listWorkers } from '@wombat/core/workers';
import { publishRun, type Run } from '@wombat/core/runs';
import { createWorker } from '../src/index.ts';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { jobStateEventually, startTestWorker, waitForRun } from './fixtures/harness.ts';

/** Makes every update of wombat.runs fail, as a database blip would, until `heal` is called. */
async function breakRunWrites(tdb: TestDatabase): Promise<() => Promise<void>> {
  await sql`create function wombat.test_blip() returns trigger language plpgsql as $$ begin raise exception 'simulated blip'; end $$`.execute(tdb.db);
  await sql`create trigger test_blip before update on wombat.runs for each row execute function wombat.test_blip()`.execute(tdb.db);
  return async () => {
    await sql`drop trigger test_blip on wombat.runs`.execute(tdb.db);
    await sql`drop function wombat.test_blip()`.execute(tdb.db);
  };
}

t.test('a job whose body succeeded is completed once, although its history writes failed for a while; the writes land later', async (t) => {
  const tdb = await createTestDatabase(t);
  const { boss } = await startTestWorker(t, tdb, { queues: ['canary'], historyWaitMs: 200 });
  const heal = await breakRunWrites(tdb);
  const id = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 50 }, trigger: 'task', retryLimit: 3, retryDelaySeconds: 1 });
  t.equal(await jobStateEventually(boss, 'canary', id, 'completed', 10_000), 'completed', 'pg-boss completes the job despite the failing bookkeeping');
  const job = await boss.getJobById('canary', id);
  t.equal(job?.retryCount, 0, 'not retried');
  t.equal((await waitForRun(tdb, id, () => true)).state, 'queued', 'the run row is still behind');
  await heal();
  const run = await waitForRun(tdb, id, (r: Run) => r.state === 'completed', 15_000);
  t.equal(run.attempts, 1, 'the retried history write recorded the one attempt');
  t.match(run.result, { sleptMs: 50, attempt: 1 });
});

t.test('canary params: sleep_ms and fail steer retries and dead letters; bad params are refused with what to fix', async (t) => {
  t.same(checkJobParams('canary', { sleep_ms: 10, fail: true }), { ok: true, value: { sleep_ms: 10, fail: true } });
  const tooLong = checkJobParams('canary', { sleep_ms: 600_001 });
  t.notOk(tooLong.ok);
  t.match(!tooLong.ok && tooLong.problems.join(), /params.sleep_ms/);
  const badFail = checkJobParams('canary', { fail: 'yes' });
  t.match(!badFail.ok && badFail.problems.join(), /params.fail/);
  t.match(!checkJobParams('canary', { sleep: 1 }).ok && (checkJobParams('canary', { sleep: 1 }) as { problems: string[] }).problems.join(), /unknown field/);

  const tdb = await createTestDatabase(t);
  const { boss } = await startTestWorker(t, tdb, { queues: ['canary'] });
  const retried = await publishRun(tdb.db, boss, { job: 'canary', params: { fail: true }, trigger: 'task', retryLimit: 1, retryDelaySeconds: 0, retryBackoff: false });
  const permanent = await publishRun(tdb.db, boss, { job: 'canary', params: { fail: 'permanent' }, trigger: 'task', retryLimit: 3, retryDelaySeconds: 0 });
  const r1 = await waitForRun(tdb, retried, (r) => r.state === 'failed', 15_000);
  t.equal(r1.attempts, 2, 'fail: true is retried as the job allows');
  t.match(r1.error, { code: 'canary_failed' });
  const r2 = await waitForRun(tdb, permanent, (r) => r.state === 'failed', 15_000);
  t.equal(r2.attempts, 1, 'fail: "permanent" is not retried');
  t.match(r2.error, { name: 'PermanentError', code: 'canary_failed' });

  const slow = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 600_000 }, trigger: 'task', timeoutSeconds: 1, retryLimit: 0 });
  const r3 = await waitForRun(tdb, slow, (r) => r.state === 'failed', 15_000);
  t.match(r3.error, { code: 'timeout' }, 'a long sleep honours the timeout');
});

t.test('a worker heartbeats its row in wombat.workers, with its loops and batch size per queue, and marks it stopped', async (t) => {
  const tdb = await createTestDatabase(t);
  const { worker } = await startTestWorker(t, tdb, { queues: ['canary', 'backtest'], batchSize: 3 });
  const [row] = await listWorkers(tdb.db);
  t.match(row, { id: worker.id, alive: true, queues: ['canary', 'backtest'], concurrency: 6, stoppedAt: null });
  t.same(
    row!.queueSettings,
    [
      { queue: 'canary', loops: 1, batchSize: 3 },
      { queue: 'backtest', loops: 1, batchSize: 3 },
    ],
    'each queue with its fetch loops and batch size, in order',
  );
  t.ok(row!.rssBytes > 0, 'memory recorded');
  await worker.stop();
  const [after] = await listWorkers(tdb.db);
  t.match(after, { id: worker.id, alive: false });
  t.ok(after!.stoppedAt instanceof Date, 'stopped');
});

t.test('a worker tells at info how each run ended: job, run id, state, duration', async (t) => {
  const tdb = await createTestDatabase(t);
  const lines: Record<string, unknown>[] = [];
  const out = new PassThrough();
  out.on('data', (chunk: Buffer) => {
    for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
  });
  const log = createLogger({ name: 'worker', level: 'info', format: 'json', destination: out });
  const boss = await startBoss({ url: tdb.url, role: 'worker', log: tdb.log, poolSize: 2 });
  t.teardown(() => boss.stop({ graceful: false, close: true }));
  const worker = createWorker({
    db: tdb.db,
    sql: tdb.sql,
    boss,
    log,
    queues: new Map([['collect-symbols', { workers: 1, batchSize: 1 }], ['canary', { workers: 1, batchSize: 1 }]]),
    handlers: { 'collect-symbols': async () => ({ symbols: 3 }) },
    pollIntervalSeconds: 0.5,
  });
  t.teardown(() => worker.stop());
  await worker.start();
  const id = await publishRun(tdb.db, boss, { job: 'collect-symbols', params: {}, trigger: 'manual' });
  const canary = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 1 }, trigger: 'manual' });
  await waitForRun(tdb, id, (r) => r.state === 'completed');
  await waitForRun(tdb, canary, (r) => r.state === 'completed');
  await worker.stop();
  t.match(lines.find((l) => l.msg === 'run ended' && l.runId === id), { level: 30, job: 'collect-symbols', state: 'completed', durationMs: Number, attempt: 1 });
  t.notOk(lines.some((l) => l.msg === 'run ended' && l.runId === canary), 'canary runs end at debug');
});
