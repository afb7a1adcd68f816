import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PgBoss } from '@wombat/core/platform';
import { backfillSchedule, cancelRun, publishRuns, requeueRun, resumeBackfill, type Run } from '@wombat/core/runs';
import { insertSchedule, validateScheduleInput, type Schedule } from '@wombat/core/schedules';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { readExecutionLog, type ExecutionEvent } from '../src/index.ts';
import { startTestEngine, startTestWorker, waitForRun } from './fixtures/harness.ts';

/**
 * Backfills against a real engine (the backfill release pass), a real worker and PostgreSQL:
 * the concurrency limit, each child's period, the parent's progress and end, pause on failure,
 * cancel, and two engines releasing each child once.
 */
const DAY_MS = 86_400_000;
const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
const day = (i: number) => new Date(today + i * DAY_MS).toISOString();


async function dailyCanary(tdb: TestDatabase, name: string, params: object): Promise<Schedule> {
  const r = validateScheduleInput({ name, job: 'canary', cron: '0 0 * * *', timezone: 'UTC', params });
  if (!r.ok) throw new Error(r.problems.join('; '));
  return insertSchedule(tdb.db, r.value);
}

const children = (tdb: TestDatabase, parentId: string) =>
  tdb.db.selectFrom('wombat.runs').selectAll().where('parent_id', '=', parentId).orderBy('scheduled_for').execute();
const getRun = (tdb: TestDatabase, id: string) => tdb.db.selectFrom('wombat.runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const ended = (r: Run) => ['completed', 'failed', 'cancelled'].includes(r.state);

/** The most handler executions at once, from the worker's execution log (its lines are in the order they happened). */
function mostAtOnce(events: ExecutionEvent[], runs: Set<string>): number {
  let now = 0;
  let most = 0;
  for (const e of events.filter((e) => runs.has(e.run))) {
    now += e.ev === 'start' ? 1 : -1;
    most = Math.max(most, now);
  }
  return most;
}

async function setup(t: { teardown(fn: () => unknown): void }, engines = 1) {
  const tdb = await createTestDatabase(t);
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-backfill-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'executions.jsonl');
  const { boss } = await startTestWorker(t, tdb, { queues: ['canary'], batchSize: 10, executionLog: log });
  for (let i = 0; i < engines; i++) await startTestEngine(t, tdb, `engine-${i}`);
  const executions = async () => readExecutionLog(await readFile(log, 'utf8').catch(() => ''));
  return { tdb, boss, executions };
}

async function start(tdb: TestDatabase, boss: PgBoss, s: Schedule, req: object): Promise<string> {
  const answer = await backfillSchedule(tdb.db, boss, s, { from: day(-10), to: day(-5), ...req });
  return answer.runId!;
}

t.test('a backfill of five days runs at most two children at once, each for its own day, and the parent counts them to completion', async (t) => {
  const { tdb, boss, executions } = await setup(t);
  // The worker runs three canaries at once when three are queued: the limit below is the backfill's.
  const plain = await publishRuns(tdb.db, boss, [0, 1, 2].map(() => ({ job: 'canary' as const, params: { sleep_ms: 400 }, trigger: 'manual' as const })));
  for (const id of plain) await waitForRun(tdb, id, ended);
  t.equal(mostAtOnce(await executions(), new Set(plain)), 3, 'the worker alone runs three at once');

  const s = await dailyCanary(tdb, 'daily-canary', { sleep_ms: 300 });
  const parentId = await start(tdb, boss, s, { concurrency: 2 });
  let sampledMost = 0;
  let parent = await getRun(tdb, parentId);
  const progressSeen = new Set<number>();
  while (!ended(parent)) {
    const kids = await children(tdb, parentId);
    sampledMost = Math.max(sampledMost, kids.filter((k) => ['queued', 'running', 'retrying'].includes(k.state)).length);
    progressSeen.add(parent.progress);
    await sleep(20);
    parent = await getRun(tdb, parentId);
  }
  const kids = await children(tdb, parentId);
  t.equal(kids.length, 5, 'one child per day');
  t.same(kids.map((k) => k.state), ['completed', 'completed', 'completed', 'completed', 'completed']);
  t.same(kids.map((k) => new Date(k.scheduled_for!).toISOString()), [-10, -9, -8, -7, -6].map(day), 'each child is its occurrence, scheduled_for included');
  t.ok(kids.every((k) => Number(k.schedule_id) === s.id && k.trigger === 'backfill'), 'children carry the schedule and trigger backfill');
  for (const [i, k] of kids.entries()) {
    const period = { from: day(-11 + i), to: day(-10 + i) };
    t.same(k.params, { sleep_ms: 300, period }, `child ${i} runs the schedule's params plus its day`);
    t.same((k.result as { period: unknown }).period, period, `child ${i}'s job saw its period`);
  }
  const starts = (await executions()).filter((e) => e.ev === 'start' && kids.some((k) => k.id === e.run));
  t.equal(starts.length, 5, 'each child ran once');
  t.equal(mostAtOnce(await executions(), new Set(kids.map((k) => k.id))), 2, 'never more than two children ran at once, and two did');
  t.ok(sampledMost <= 2, `at most two children were queued, running or retrying at any sample (${sampledMost})`);
  t.match(parent, { state: 'completed', trigger: 'backfill', progress: 1, progress_message: /^5\/5 done, 0 failed/ });
  t.equal(Number(parent.schedule_id), s.id, 'the backfill is in its schedule\'s run history');
  t.ok([...progressSeen].some((p) => p > 0 && p < 1), 'the parent showed partial progress on the way');
  t.ok(parent.finished_at, 'and finished');
});

t.test('two engines release each child once and keep the limit', async (t) => {
  const { tdb, boss, executions } = await setup(t, 2);
  const s = await dailyCanary(tdb, 'two-engines', { sleep_ms: 50 });
  const parentId = await backfillSchedule(tdb.db, boss, s, { from: day(-30), to: day(-18), concurrency: 3 }).then((a) => a.runId!);
  const parent = await waitForRun(tdb, parentId, ended, 30_000);
  t.equal(parent.state, 'completed');
  const kids = await children(tdb, parentId);
  t.equal(kids.length, 12);
  const ids = new Set(kids.map((k) => k.id));
  const starts = (await executions()).filter((e) => e.ev === 'start' && ids.has(e.run));
  t.equal(starts.length, 12, 'twelve handler starts for twelve children');
  t.equal(new Set(starts.map((e) => e.run)).size, 12, 'each child started exactly once');
  t.ok(mostAtOnce(await executions(), ids) <= 3, 'never more than three at once');
  const jobs = await tdb.sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where id = any(${[...ids]}::uuid[])`;
  t.equal(jobs[0]!.n, 12, 'one pg-boss job per child');
});

t.test('a backfill goes on where it was after its engine stops and another starts', async (t) => {
  const { tdb, boss, executions } = await setup(t, 0);
  const first = await startTestEngine(t, tdb, 'first');
  const s = await dailyCanary(tdb, 'restart', { sleep_ms: 100 });
  const parentId = await start(tdb, boss, s, { concurrency: 1 });
  await waitFor(async () => (await children(tdb, parentId)).some((k) => k.state === 'completed'));
  await first.stop();
  await sleep(400);
  const stalled = await children(tdb, parentId);
  t.ok(stalled.some((k) => k.state === 'held'), 'without an engine, waiting children stay held');
  t.equal((await getRun(tdb, parentId)).state, 'running', 'and the backfill is still running');
  await startTestEngine(t, tdb, 'second');
  const parent = await waitForRun(tdb, parentId, ended, 20_000);
  t.equal(parent.state, 'completed');
  const kids = await children(tdb, parentId);
  t.same(kids.map((k) => k.state), kids.map(() => 'completed'));
  const starts = (await executions()).filter((e) => e.ev === 'start' && kids.some((k) => k.id === e.run));
  t.equal(new Set(starts.map((e) => e.run)).size, 5, 'every child ran');
  t.equal(starts.length, 5, 'and once');
});

t.test('pause on failure releases no more children after a failure, until resumed; cancel ends the rest', async (t) => {
  const { tdb, boss } = await setup(t);
  const s = await dailyCanary(tdb, 'failing', { fail: 'permanent' });
  const parentId = await start(tdb, boss, s, { concurrency: 1, pauseOnFailure: true });
  const paused = await waitForRun(tdb, parentId, (r) => r.state === 'held');
  t.match(paused.reason, /paused: a child run failed.*wombat backfill-resume .*wombat cancel/);
  t.equal(paused.progress_message, '1/5 done, 1 failed, 0 active, 4 waiting');
  await sleep(300); // several release rounds
  t.same((await children(tdb, parentId)).map((k) => k.state), ['failed', 'held', 'held', 'held', 'held'], 'nothing released after the failure');
  t.equal((await getRun(tdb, parentId)).state, 'held', 'the backfill stays paused');

  const resumed = await resumeBackfill(tdb.db, boss, parentId);
  t.match(resumed, { state: 'running', released: [String] });
  await waitForRun(tdb, parentId, (r) => r.state === 'held');
  t.same((await children(tdb, parentId)).map((k) => k.state), ['failed', 'failed', 'held', 'held', 'held'], 'one more ran after the resume, and its failure paused it again');
  await t.rejects(resumeBackfill(tdb.db, boss, (await children(tdb, parentId))[0]!.id), { code: 'not_a_backfill' });

  t.match(await cancelRun(tdb.db, boss, parentId), { ok: true, previous: 'held' });
  t.same((await children(tdb, parentId)).map((k) => k.state), ['failed', 'failed', 'cancelled', 'cancelled', 'cancelled'], 'the waiting children are cancelled with it');
  t.equal((await getRun(tdb, parentId)).state, 'cancelled');
  await t.rejects(resumeBackfill(tdb.db, boss, parentId), { code: 'backfill_not_paused' });

  const failed = (await children(tdb, parentId))[0]!;
  const again = await getRun(tdb, await requeueRun(tdb.db, boss, failed.id, { trigger: 'manual', onlyDeadLetter: true }));
  t.same(new Date(again.scheduled_for!).toISOString(), day(-10), 'a requeued child keeps its occurrence');
  t.match(again, { parent_id: parentId, params: failed.params });
});

t.test('cancelling a running backfill cancels its running and waiting children and releases no more', async (t) => {
  const { tdb, boss } = await setup(t);
  const s = await dailyCanary(tdb, 'slow', { sleep_ms: 60_000 });
  const parentId = await start(tdb, boss, s, { concurrency: 2 });
  await waitFor(async () => (await children(tdb, parentId)).filter((k) => k.state === 'running').length === 2);
  t.match(await cancelRun(tdb.db, boss, parentId), { ok: true, previous: 'running' });
  const kids = await children(tdb, parentId);
  t.same(kids.map((k) => k.state), ['cancelled', 'cancelled', 'cancelled', 'cancelled', 'cancelled']);
  const jobs = await tdb.sql<{ state: string }[]>`select state::text from pgboss.job where id = any(${kids.map((k) => k.id)}::uuid[])`;
  t.same(jobs.map((j) => j.state), ['cancelled', 'cancelled'], 'the two released children\'s jobs are cancelled; the others never got one');
  await sleep(300);
  t.same((await children(tdb, parentId)).map((k) => k.state), kids.map(() => 'cancelled'), 'nothing is released after the cancel');
  t.equal((await getRun(tdb, parentId)).state, 'cancelled', 'the parent stays cancelled');
});

async function waitFor(check: () => Promise<boolean>, limitMs = 15_000): Promise<void> {
  const until = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}
