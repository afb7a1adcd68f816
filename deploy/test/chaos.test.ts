import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { startPrivatePostgres } from '@wombat/core/testing';
import { ADMIN_TOKEN, HEARTBEAT_INTERVAL_MS, measureRecovery, post, startStack, startSubmissions, type Answer } from '../outage-harness.ts';

/** Polls `check` every 100 ms until it holds or `limitMs` passes; the caller asserts afterwards. */
async function eventually(check: () => Promise<boolean>, limitMs: number): Promise<void> {
  const end = Date.now() + limitMs;
  while (!(await check()) && Date.now() < end) await sleep(100);
}

/**
 * Chaos: api, engine and worker as real processes on a PostgreSQL of this file's
 * own, a per-second schedule and a stream of task submissions, while the database
 * is stopped and restarted three times (the first outage 20 s). Afterwards: every
 * occurrence recorded once (published, or missed per its policy), every submission
 * answered 202 with its run or 503, no request unanswered, the engine's heartbeat
 * fresh, every service still running, fuzzed keys answered 400 throughout.
 */
const OUTAGES_MS = [20_000, 5_000, 5_000];
/** A request unanswered after this is hung (the api's own deadlines are 2 s). */
const CLIENT_DEADLINE_MS = 10_000;

const pg = await startPrivatePostgres(t);
const dataRoot = mkdtempSync(path.join(tmpdir(), 'wombat-chaos-'));
t.teardown(() => rmSync(dataRoot, { recursive: true, force: true }));

t.test('three database outages under load: nothing lost, doubled or hung; every service recovers on its own', async (t) => {
  const stack = await startStack({ databaseUrl: pg.url, dataRoot, teardown: (fn) => t.teardown(fn) });
  const created = await fetch(`${stack.apiUrl}/api/schedules`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'chaos-every-second', job: 'canary', every: '1s', overlap: 'allow', missed: 'skip' }),
  });
  t.equal(created.status, 201, 'schedule created');
  const scheduleId = ((await created.json()) as { id: number }).id;
  const subs = startSubmissions(stack.apiUrl, { everyMs: 150, deadlineMs: CLIENT_DEADLINE_MS, fuzzEvery: 10 });
  // Under way before the first outage: submissions accepted, occurrences run by the worker.
  const probe = postgres(pg.url, { max: 1, onnotice: () => {} });
  await eventually(async () => {
    const [done] = await probe<{ n: number }[]>`select count(*)::int as n from wombat.runs where schedule_id = ${scheduleId} and state = 'completed'`;
    return done!.n >= 1 && subs.answers.filter((a) => a.status === 202).length >= 5;
  }, 30_000);
  await probe.end({ timeout: 1 });

  const fuzzDuringOutage: Awaited<ReturnType<typeof post>>[] = [];
  let lastRestartAt = new Date();
  for (const [i, outageMs] of OUTAGES_MS.entries()) {
    await pg.stop();
    const stoppedAt = Date.now();
    await sleep(Math.min(2000, outageMs));
    fuzzDuringOutage.push(await post(stack.apiUrl, '/api/tasks/canary', { 'x\u0000': 1 }, CLIENT_DEADLINE_MS));
    await sleep(Math.max(0, outageMs - (Date.now() - stoppedAt)));
    await pg.start();
    const restartedAt = Date.now();
    lastRestartAt = new Date(restartedAt);
    const r = await measureRecovery({ apiUrl: stack.apiUrl, databaseUrl: pg.url, scheduleId, restartedAt, limitMs: 60_000 });
    t.comment(`outage ${i + 1} (${outageMs / 1000} s): api accepts after ${r.apiAcceptsMs} ms, engine publishes after ${r.enginePublishesMs} ms and heartbeats after ${r.engineHeartbeatsMs} ms, worker fetches after ${r.workerFetchesMs} ms`);
    for (const [k, v] of Object.entries(r)) t.ok(Number.isFinite(v), `outage ${i + 1}: recovered (${k})`);
    await sleep(2000);
  }
  const answers = await subs.stop();

  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  t.teardown(() => sql.end({ timeout: 1 }));
  // The last occurrences get a moment to be published and fetched.
  await eventually(async () => {
    const [row] = await sql<{ unsettled: number; completed: number }[]>`
      select (select count(*)::int from wombat.runs where schedule_id = ${scheduleId} and trigger = 'schedule' and published_at is null and state <> 'missed') as unsettled,
             (select count(*)::int from pgboss.job where name = 'canary' and state = 'completed' and completed_on > ${lastRestartAt}) as completed`;
    return row!.unsettled === 0 && row!.completed > 0;
  }, 10_000);

  // Every request answered, before its deadline, with an answer it may give.
  const hung = answers.filter((a) => a.status === 0);
  t.same(hung, [], 'no request went unanswered');
  const tasks = answers.filter((a) => a.kind === 'task');
  const unexpected = tasks.filter((a) => a.status !== 202 && !(a.status === 503 && a.code === 'database_unavailable'));
  // What the api logged about an unexpected answer says which error was not classified.
  const apiErrors = unexpected.length > 0 ? stack.api.output().split('\n').filter((l) => /"level":50/.test(l)).slice(-5) : [];
  t.same(unexpected, [], 'every submission answered 202 or 503 database_unavailable', { apiErrors });
  const accepted = tasks.filter((a) => a.status === 202);
  const refused = tasks.filter((a) => a.status === 503);
  t.ok(accepted.length > 50 && refused.length > 10, `submissions: ${accepted.length} accepted, ${refused.length} refused during outages`);
  t.comment(`answer times: 202 max ${Math.max(...accepted.map((a) => a.ms))} ms, 503 max ${Math.max(...refused.map((a) => a.ms))} ms`);
  const ids = accepted.map((a) => a.taskId!);
  const found = await sql<{ id: string }[]>`select id from wombat.runs where id = any(${ids}::uuid[])`;
  t.equal(found.length, ids.length, 'every accepted submission has its run');
  const jobs = await sql<{ n: number }[]>`select count(*)::int as n from pgboss.job where id = any(${ids}::uuid[])`;
  t.equal(jobs[0]!.n, ids.length, 'and its job');
  const fuzz = [...answers.filter((a) => a.kind === 'fuzz'), ...fuzzDuringOutage];
  t.ok(fuzz.length >= 3);
  t.same(fuzz.filter((a) => a.status !== 400), [] as Answer[], 'fuzzed NUL/surrogate keys answered 400, outages included');

  // Exactly once: one row per occurrence, consecutive seconds, published or missed.
  const runs = await sql<{ at: Date; state: string; published: boolean }[]>`
    select scheduled_for as at, state, published_at is not null as published from wombat.runs
    where schedule_id = ${scheduleId} and trigger = 'schedule' order by scheduled_for`;
  const instants = runs.map((r) => r.at.getTime());
  t.equal(new Set(instants).size, instants.length, 'no occurrence recorded twice');
  t.same(instants.slice(1).filter((x, i) => x - instants[i]! !== 1000), [], 'no occurrence skipped');
  t.same(runs.filter((r) => !(r.published || r.state === 'missed')), [], 'each published, or recorded missed (policy skip)');
  const publishedRuns = runs.filter((r) => r.published).length;
  const scheduleJobs = await sql<{ n: number }[]>`
    select count(*)::int as n from pgboss.job j join wombat.runs r on r.id = j.id where r.schedule_id = ${scheduleId}`;
  t.equal(scheduleJobs[0]!.n, publishedRuns, 'one job per published occurrence');
  t.ok(runs.some((r) => r.state === 'missed'), 'outages left missed occurrences');
  t.comment(`${runs.length} occurrences: ${publishedRuns} published, ${runs.length - publishedRuns} missed`);

  const [engine] = await sql<{ age_ms: number }[]>`
    select (extract(epoch from now() - max(last_beat_at)) * 1000)::int as age_ms from wombat.engines where stopped_at is null`;
  t.ok(engine!.age_ms < 3 * HEARTBEAT_INTERVAL_MS, `engine heartbeat fresh (${engine!.age_ms} ms old)`);
  const completedAfter = await sql<{ n: number }[]>`
    select count(*)::int as n from pgboss.job where name = 'canary' and state = 'completed' and completed_on > ${lastRestartAt}`;
  t.ok(completedAfter[0]!.n > 0, 'the worker completes jobs after the last outage');

  for (const p of stack.all) t.ok(p.alive(), `${p.name} still running`);
  for (const p of stack.all) t.notMatch(p.output(), /"level":60/, `${p.name} logged nothing fatal`);
  await stack.stop();
  for (const p of stack.all) t.equal((await p.exited).code, 0, `${p.name} stops cleanly afterwards`);
});
