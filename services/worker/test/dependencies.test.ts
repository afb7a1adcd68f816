/**
 * Dependencies end to end: scheduling engines, a worker and PostgreSQL. Schedule B
 * waits for A (after); both fire at the same second of the day, so B's period is
 * that day and A's run of it decides.
 */
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { createLogger, loadConfig, startBoss } from '@wombat/core/platform';
import { alertFields, createAlerting } from '@wombat/core/alerts';
import { insertSchedule, validateScheduleInput, type Schedule } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import { createEngine, engineOptions, loadConfig as loadEngineConfig, type Engine, type EngineOptions } from '@wombat/scheduler-engine';
import { startTestWorker } from './fixtures/harness.ts';

const tdb = await createTestDatabase(t, { poolSize: 12 });
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log, poolSize: 4 });
t.teardown(() => boss.stop({ graceful: false, close: true }));
await startTestWorker(t, tdb, { queues: ['canary'] });

// The engine's own defaults, with no built-ins and its loops fast enough for a test.
const options: EngineOptions = {
  ...engineOptions(loadEngineConfig({ ENGINE_HEARTBEAT_INTERVAL_MS: '1000', ENGINE_MISFIRE_GRACE_MS: '5000', ENGINE_HELD_RUN_CHECK_MS: '100' }), { host: 'test-host', pid: process.pid }),
  builtIns: [],
  disabledBuiltIns: [],
  defaultSchedules: [],
};

/** What the engines logged, as JSON lines: to count who released a run. */
const logged: Record<string, unknown>[] = [];
const engineLog = createLogger({
  name: 'engine-test',
  level: 'info',
  format: 'json',
  destination: new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logged.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  }) as never,
});

async function startEngine(t: Test, clock?: () => number, opts: Partial<EngineOptions> = {}): Promise<Engine> {
  const engine = createEngine({ db: tdb.db, sql: tdb.sql, boss, log: engineLog, options: { ...options, ...opts }, ...(clock ? { clock } : {}) });
  t.teardown(() => engine.stop());
  await engine.start();
  return engine;
}

let n = 0;
/** A and B (after A) at the same second of the day, `leadMs` from now, in UTC. */
async function pair(a: object, b: object, leadMs = 2_500, bLaterMs = 0): Promise<{ a: Schedule; b: Schedule; atMs: number }> {
  n++;
  const atMs = Math.ceil((Date.now() + leadMs) / 1000) * 1000;
  const time = new Date(atMs).toISOString().slice(11, 19);
  const bTime = new Date(atMs + bLaterMs).toISOString().slice(11, 19);
  const def = (input: object) => {
    const r = validateScheduleInput(input);
    if (!r.ok) throw new Error(r.problems.join('; '));
    return r.value;
  };
  const sa = await insertSchedule(tdb.db, def({ name: `prerequisite-${n}`, job: 'canary', times: [time], ...a }));
  const sb = await insertSchedule(tdb.db, def({ name: `dependent-${n}`, job: 'canary', times: [bTime], after: [sa.name], ...b }));
  return { a: sa, b: sb, atMs };
}

const runsOf = (s: Schedule) => tdb.db.selectFrom('wombat.runs').selectAll().where('schedule_id', '=', s.id).orderBy('scheduled_for').execute();

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, limitMs = 15_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await sleep(25);
  }
}
const one = (s: Schedule, state: string) => until(() => runsOf(s), (r) => r.length === 1 && r[0]!.state === state);

t.test('B waits while A runs, then is released once with three engines and runs on the worker', async (t) => {
  const { a, b } = await pair({ params: { sleep_ms: 1_500 } }, {});
  await Promise.all([startEngine(t), startEngine(t), startEngine(t, () => Date.now() - 300)]);
  const [aRun] = await one(a, 'running');
  const [waiting] = await runsOf(b);
  t.equal(waiting?.state, 'waiting', 'B is waiting while A runs');
  t.match(waiting?.reason, new RegExp(`waits for ${a.name} \\(after\\)`), 'and says what it waits for');
  t.equal(await boss.getJobById('canary', waiting!.id), null, 'without a job');
  const [bRun] = await one(b, 'completed');
  const aDone = (await runsOf(a))[0]!;
  t.equal(aDone.state, 'completed');
  t.equal(bRun!.id, waiting!.id, 'the waiting run itself ran');
  t.ok(new Date(bRun!.published_at!).getTime() >= new Date(aDone.finished_at!).getTime(), 'published after A completed');
  t.equal(bRun!.attempts, 1);
  const jobs = await sql<{ n: number }>`select count(*)::int as n from pgboss.job where id = ${bRun!.id}`.execute(tdb.db);
  t.equal(jobs.rows[0]!.n, 1, 'one job for B');
  t.equal((await runsOf(b)).length, 1, 'one run of B');
  const releases = logged.filter((l) => l.runId === waiting!.id && l.msg === 'released waiting run: its prerequisites completed');
  t.equal(releases.length, 1, 'released by one engine, once');
  t.ok(aRun);
});

t.test('A failing for good skips B with dependency_failed and an alert naming both', async (t) => {
  const { a, b } = await pair({ params: { fail: 'permanent' } }, {});
  await Promise.all([startEngine(t), startEngine(t)]);
  await one(a, 'failed');
  const [bRun] = await one(b, 'skipped');
  t.match(bRun?.reason, new RegExp(`^dependency_failed: ${b.name} waits for ${a.name}, which ended failed`));
  const alerting = createAlerting({ db: tdb.db, log: tdb.log, options: { ...loadConfig(alertFields, { ALERT_DAILY_REPORT_TIME: 'off', ALERT_RESOLVE_AFTER_MS: '0' }), timezone: 'UTC' } });
  await alerting.evaluate();
  const alerts = await sql<{ subject: string }>`select subject from wombat.alerts where key = ${`dependency_skipped:${b.id}`} and state = 'open'`.execute(tdb.db);
  t.match(alerts.rows, [{ subject: `schedule ${b.name} skipped: its prerequisite ${a.name} failed` }]);
});

t.test('B ends skipped with dependency_timeout when A does not complete within wait_for', async (t) => {
  const { a, b, atMs } = await pair({ params: { sleep_ms: 4_000 } }, { wait_for: 2 });
  await startEngine(t);
  const [bRun] = await one(b, 'skipped');
  t.match(bRun?.reason, new RegExp(`^dependency_timeout: ${b.name} waited 2s \\(wait_for\\) for ${a.name}`));
  t.ok(new Date(bRun!.finished_at!).getTime() >= atMs + 2_000, 'not before the window passed');
  await one(a, 'completed');
  t.equal((await runsOf(b))[0]!.state, 'skipped', 'A completing later does not revive it');
});

t.test('a waiting run survives an engine restart and is released by the new engine', async (t) => {
  const { a, b } = await pair({ params: { sleep_ms: 2_500 } }, {});
  const first = await startEngine(t);
  await one(a, 'running');
  t.equal((await runsOf(b))[0]?.state, 'waiting');
  await first.stop();
  await startEngine(t);
  t.equal((await runsOf(b))[0]?.state, 'waiting', 'still waiting after the restart');
  const [bRun] = await one(b, 'completed');
  t.equal((await runsOf(b)).length, 1);
  t.ok(bRun);
});

t.test('A completing while every engine is down (past wait_for) releases B when engines return', async (t) => {
  const { a, b } = await pair({ params: { sleep_ms: 1_000 } }, { wait_for: 1 });
  const engines = await Promise.all([startEngine(t), startEngine(t)]);
  // Stopped as soon as B is recorded waiting, before its window can pass.
  const [waiting] = await until(() => runsOf(b), (r) => r.length === 1);
  t.equal(waiting?.state, 'waiting');
  await Promise.all(engines.map((e) => e.stop()));
  await one(a, 'completed');
  await sleep(1_500);
  t.equal((await runsOf(b))[0]?.state, 'waiting', 'nothing happens while no engine runs');
  await Promise.all([startEngine(t), startEngine(t)]);
  const [bRun] = await one(b, 'completed');
  t.equal(bRun!.id, waiting!.id, 'released, not timed out: completion is judged before the window');
  const jobs = await sql<{ n: number }>`select count(*)::int as n from pgboss.job where id = ${bRun!.id}`.execute(tdb.db);
  t.equal(jobs.rows[0]!.n, 1);
});

t.test('with A already complete when B falls due, B is released right after its publication, not at the next round', async (t) => {
  const { a, b, atMs } = await pair({}, {}, 2_500, 3_000);
  // A release round only once a minute: what releases B here is the pass that recorded it waiting.
  await startEngine(t, undefined, { heldRunCheckMs: 60_000 });
  await one(a, 'completed');
  const [bRun] = await one(b, 'completed');
  t.equal(bRun?.state, 'completed');
  t.ok(bRun?.published_at, 'published');
  const published = new Date(bRun!.published_at!).getTime();
  t.ok(published - (atMs + 3_000) < 2_000, `published ${published - (atMs + 3_000)} ms after its occurrence`);
});
