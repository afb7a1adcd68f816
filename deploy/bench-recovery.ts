/**
 * Recovery after a PostgreSQL outage, measured (a benchmark: it prints figures, it
 * asserts nothing). Starts a PostgreSQL of its own, the api, the engine and a worker
 * as real processes, a per-second schedule and a stream of canary submissions (10/s,
 * each sleeping 2-6 s with one retry, so that handlers are running when the database
 * goes); then stops the database for each of OUTAGES_S seconds in turn and, after each
 * restart, prints how long until the api accepts a task, the engine publishes and
 * heartbeats, and a worker fetches a job. Once everything has settled it prints, per
 * outage, what became of the runs whose handlers were running when it began (from the
 * worker's WORKER_EXECUTION_LOG and the run history): retried, lost (worker_lost),
 * executed twice (two executions overlapping, or two that ended completed). Also the
 * slowest 503 answered during the outages.
 *
 * Then, where PostgreSQL's own binaries with pg_basebackup are installed, a fail-over
 * to a streaming standby, synchronous and asynchronous (deploy/failover-harness.ts):
 * how long from the primary's kill to the promotion, and from the promotion until each
 * service works again; what was lost and what ran twice.
 *
 *   node deploy/bench-recovery.ts            # outages of 10, 30 and 60 s, then the fail-overs
 *   OUTAGES_S=30,10 node deploy/bench-recovery.ts
 *   FAILOVER=0 node deploy/bench-recovery.ts # no fail-over
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { startPrivatePostgres } from '@wombat/core/testing';
import { ADMIN_TOKEN, measureRecovery, startStack, startSubmissions, type Recovery } from './outage-harness.ts';
import { check, readEvidenceRows } from './soak-checks.ts';
import { byRun, openExecutions, readExecutions } from './soak-executions.ts';
import { findPostgresBin, runFailover } from './failover-harness.ts';

const outages = (process.env.OUTAGES_S ?? '10,30,60').split(',').map((s) => Number(s.trim()) * 1000);
if (outages.some((ms) => !(ms > 0))) {
  console.error('OUTAGES_S must be a comma-separated list of seconds, like 10,30,60');
  process.exit(2);
}

const cleanups: (() => unknown)[] = [];
const teardown = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
const dataRoot = mkdtempSync(path.join(tmpdir(), 'wombat-bench-recovery-'));
const executionLog = path.join(dataRoot, 'executions.jsonl');
try {
  const pg = await startPrivatePostgres(teardown);
  const stack = await startStack({ databaseUrl: pg.url, dataRoot, teardown: teardown.teardown, workerEnv: { WORKER_EXECUTION_LOG: executionLog } });
  const created = await fetch(`${stack.apiUrl}/api/schedules`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench-every-second', job: 'canary', every: '1s', overlap: 'allow', missed: 'skip' }),
  });
  const scheduleId = ((await created.json()) as { id: number }).id;
  let n = 0;
  const subs = startSubmissions(stack.apiUrl, {
    everyMs: 100,
    deadlineMs: 10_000,
    fuzzEvery: 1_000_000,
    task: () => ({ path: '/api/tasks/canary?max_retries=1', body: { sleep_ms: 2000 + ((n++ * 397) % 4000) } }),
  });
  await sleep(5000);
  const rows: (Recovery & { outageS: number; inFlight: Set<string> })[] = [];
  for (const ms of outages) {
    // The runs whose handlers run as the database goes.
    const inFlight = new Set([...openExecutions(readExecutions(executionLog)).values()].flat().map((x) => x.run));
    await pg.stop();
    await sleep(ms);
    await pg.start();
    const r = await measureRecovery({ apiUrl: stack.apiUrl, databaseUrl: pg.url, scheduleId, restartedAt: Date.now(), limitMs: 60_000 });
    rows.push({ outageS: ms / 1000, inFlight, ...r });
    await sleep(5000);
  }
  const answers = await subs.stop();

  // Settled: every run of the outages' in-flight handlers has ended (retries and the reconciler included).
  const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
  cleanups.push(() => sql.end({ timeout: 1 }));
  const watched = [...new Set(rows.flatMap((r) => [...r.inFlight]))];
  const settleUntil = Date.now() + 90_000;
  while (Date.now() < settleUntil) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from wombat.runs where id = any(${watched}::uuid[]) and state in ('held', 'queued', 'running', 'retrying')`;
    if (row!.n === 0) break;
    await sleep(500);
  }
  const executions = readExecutions(executionLog);
  const findings = check({ ...(await readEvidenceRows(sql)), executions, lives: [], answers: [], schedules: [], clientDeadlineMs: 10_000 });
  const twice = new Set([...findings.offenders.executedTwice, ...findings.offenders.completedTwice]);
  const lost = new Set(findings.offenders.lostWhileLived);
  const unfinished = new Set(findings.offenders.stuck);
  const runs = byRun(executions);

  const refused = answers.filter((a) => a.status === 503);
  const unanswered = answers.filter((a) => a.status === 0);
  console.log('\nrecovery after PostgreSQL restarts (ms from accepting connections again)');
  console.log('outage s | api accepts | engine publishes | engine heartbeats | worker fetches');
  for (const r of rows) {
    console.log(
      [r.outageS, r.apiAcceptsMs, r.enginePublishesMs, r.engineHeartbeatsMs, r.workerFetchesMs].map((v, i) => String(v).padStart(i === 0 ? 8 : [11, 16, 17, 14][i - 1]!)).join(' | '),
    );
  }
  console.log('\nruns whose handlers were running as each outage began, once settled (0 retried elsewhere, lost or twice is the aim)');
  console.log('outage s | all healthy ms | in flight | retried | lost | executed twice | unfinished');
  for (const r of rows) {
    const ids = [...r.inFlight];
    const allHealthy = Math.max(r.apiAcceptsMs, r.enginePublishesMs, r.engineHeartbeatsMs, r.workerFetchesMs);
    const figures = [
      r.outageS,
      allHealthy,
      ids.length,
      ids.filter((id) => (runs.get(id)?.length ?? 0) > 1).length,
      ids.filter((id) => lost.has(id)).length,
      ids.filter((id) => twice.has(id)).length,
      ids.filter((id) => unfinished.has(id)).length,
    ];
    console.log(figures.map((v, i) => String(v).padStart([8, 14, 9, 7, 4, 14, 10][i]!)).join(' | '));
  }
  const times = refused.map((a) => a.ms).sort((a, b) => a - b);
  console.log(
    `\nsubmissions: ${answers.length} (${answers.length - refused.length - unanswered.length} accepted, ${refused.length} answered 503, ${unanswered.length} unanswered); ` +
      `503 answer time p50 ${times[Math.floor(times.length / 2)] ?? '-'} ms, max ${times.at(-1) ?? '-'} ms`,
  );
  for (const p of stack.all) if (!p.alive()) console.log(`${p.name} exited during the run`);
} finally {
  for (const fn of cleanups.reverse()) await fn();
  rmSync(dataRoot, { recursive: true, force: true });
}

const bin = process.env.FAILOVER === '0' ? undefined : findPostgresBin();
if (bin) {
  console.log('\nfail-over to a streaming standby (primary killed with pg_ctl stop -m immediate, standby promoted, address re-pointed; ms from the promotion)');
  console.log('standby      | kill to promotion | api accepts | engine publishes | engine heartbeats | worker fetches | accepted | lost | published twice | completed twice | stuck');
  for (const synchronous of [true, false]) {
    const done: (() => unknown)[] = [];
    try {
      const r = await runFailover({ teardown: (fn) => void done.push(fn) }, { bin, synchronous });
      const v = r.recovery;
      const figures = [synchronous ? 'synchronous' : 'asynchronous', r.outageMs, v.apiAcceptsMs, v.enginePublishesMs, v.engineHeartbeatsMs, v.workerFetchesMs, r.accepted, r.lostAccepted.length + r.lostAfter.length, r.publishedTwice, r.completedTwice.length, r.stuck.length];
      console.log(figures.map((x, i) => String(x).padStart([12, 17, 11, 16, 17, 14, 8, 4, 15, 15, 5][i]!)).join(' | '));
    } finally {
      for (const fn of done.reverse()) await fn();
    }
  }
} else if (process.env.FAILOVER !== '0') {
  console.log('\nfail-over: skipped, no PostgreSQL binaries with pg_basebackup (Debian: apt-get install postgresql)');
}
