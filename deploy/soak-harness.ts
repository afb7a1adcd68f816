/**
 * The chaos soak, shared by `npm run soak` (deploy/soak.ts, a seeded random fault
 * sequence) and deploy/test/soak.test.ts (a fixed one): engines, workers and the api
 * as processes on a PostgreSQL of the soak's own, canary tasks submitted ~10/s with
 * sleeps of 0-8 s, busy schedules of every overlap policy, faults injected one after
 * another; then the load stops, everything settles, every process gets SIGTERM, and
 * the checks of soak-checks.ts run over the execution log, the tables and the answers.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { startPrivatePostgres } from '@wombat/core/testing';
import { ADMIN_TOKEN, FUZZ_BODIES, post, type Recovery } from './outage-harness.ts';
import { CHECKS, check, explainRuns, readEvidenceRows, type CheckName, type Evidence, type Findings, type SoakAnswer } from './soak-checks.ts';
import { readExecutions } from './soak-executions.ts';
import { describeFault, injectFault, randomFaults, seededRandom, type Fault, type FaultRecord } from './soak-faults.ts';
import { startFleet, type Fleet } from './soak-fleet.ts';

/** A request unanswered after this is hung (the api's own deadlines are 2 s). */
export const CLIENT_DEADLINE_MS = 10_000;

/** Busy schedules, one of each overlap policy (and of each missed policy), their runs sleeping. */
export const SOAK_SCHEDULES = [
  { name: 'soak-allow-1s', job: 'canary', every: '1s', overlap: 'allow', missed: 'skip', params: { sleep_ms: 2500 }, max_retries: 1 },
  { name: 'soak-skip-1s', job: 'canary', every: '1s', overlap: 'skip', missed: 'once', params: { sleep_ms: 3000 }, max_retries: 1 },
  { name: 'soak-queue-one-2s', job: 'canary', every: '2s', overlap: 'queue-one', missed: 'all', catchup_max: 5, params: { sleep_ms: 1500 }, max_retries: 2 },
  { name: 'soak-allow-2s', job: 'canary', every: '2s', overlap: 'allow', missed: 'all', catchup_max: 20, params: { sleep_ms: 6000 }, max_retries: 2 },
] as const;

export interface SoakOptions {
  faults: Fault[];
  /** Stop injecting once this long has passed since the first fault (a random sequence is longer). */
  faultsForMs?: number;
  seed: number;
  engines?: number;
  workers?: number;
  /** Load without faults after the last fault, before the load stops (default 5 s): catch-up backlogs drain. */
  quietMs?: number;
  /** How long the runs get to finish once the load and the faults have stopped. */
  settleMs?: number;
  /** Keep every process's output and the execution log here (default: a temporary directory, removed). */
  keepDir?: string;
  /** The services' LOG_LEVEL (default info). */
  logLevel?: string;
  /** Settings every service gets (default: none, production's). */
  env?: Record<string, string>;
  teardown(fn: () => unknown): void;
  log(line: string): void;
}

export interface SoakReport {
  findings: Findings;
  evidence: Evidence;
  faults: FaultRecord[];
  /** Fuzzed requests sent during database outages. */
  fuzzDuringOutage: SoakAnswer[];
  runsByState: Record<string, number>;
  occurrences: { name: string; total: number; published: number; missed: number; skipped: number }[];
  /** Observed just before the final SIGTERM. */
  beforeStop: { engineBeatAgeMs: number; completedSinceLastDatabaseFault: number; dead: string[] };
  settledMs: number;
  summary: string[];
  ok: boolean;
}

/** A stream of canary submissions (sleep 0-8 s, 0-2 retries) every `everyMs`, every 10th a fuzzed body. */
function startLoad(fleet: Fleet, seed: number, everyMs: number) {
  const rnd = seededRandom(seed);
  const answers: SoakAnswer[] = [];
  const inFlight = new Set<Promise<void>>();
  let n = 0;
  const submit = async (params: object, maxRetries: number): Promise<SoakAnswer> => {
    const at = Date.now();
    const a = { ...(await post(fleet.apiUrl, `/api/tasks/canary?max_retries=${maxRetries}`, params, CLIENT_DEADLINE_MS)), at, kind: 'task' as const, params };
    answers.push(a);
    return a;
  };
  const timer = setInterval(() => {
    const i = n++;
    let p: Promise<unknown>;
    if (i % 10 === 9) {
      const fuzz = FUZZ_BODIES[i % FUZZ_BODIES.length]!;
      const at = Date.now();
      p = post(fleet.apiUrl, fuzz.path, fuzz.body, CLIENT_DEADLINE_MS).then((a) => answers.push({ ...a, at, kind: 'fuzz' }));
    } else {
      const sleepMs = rnd() < 0.25 ? 0 : 100 + Math.floor(rnd() * 7900);
      const r = rnd();
      p = submit({ sleep_ms: sleepMs }, r < 0.4 ? 0 : r < 0.7 ? 1 : 2);
    }
    const done = p.then(() => {});
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  }, everyMs);
  return {
    answers,
    submit,
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
    },
  };
}

async function api(fleet: Fleet, method: string, pathname: string, body?: unknown): Promise<Response> {
  return fetch(fleet.apiUrl + pathname, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(CLIENT_DEADLINE_MS),
  });
}

async function eventually(check: () => Promise<boolean>, limitMs: number): Promise<boolean> {
  const end = Date.now() + limitMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > end) return false;
    await sleep(250);
  }
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const pg = await startPrivatePostgres(opts);
  const dir = opts.keepDir ?? mkdtempSync(path.join(tmpdir(), 'wombat-soak-'));
  if (opts.keepDir) mkdirSync(dir, { recursive: true });
  else opts.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const executionLog = path.join(dir, 'executions.jsonl');
  const started = Date.now();
  const fleet = await startFleet({
    databaseUrl: pg.url,
    dataRoot: path.join(dir, 'data'),
    executionLog,
    engines: opts.engines ?? 2,
    workers: opts.workers ?? 3,
    ...(opts.keepDir ? { logDir: dir } : {}),
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    teardown: (fn) => opts.teardown(fn),
  });
  opts.log(`${fleet.lives.length} processes ready in ${((Date.now() - started) / 1000).toFixed(1)} s (api ${fleet.apiUrl}); execution log ${executionLog}`);
  const sql = postgres(pg.url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  opts.teardown(() => sql.end({ timeout: 1 }));

  // The soak's workers serve canary alone: a built-in falling due inside the soak (collect-symbols at
  // 00:00 UTC) would wait for a worker that never comes and read as stuck. They are paused, as an
  // operator would pause them on a fleet without the exchanges.
  const listed = (await (await api(fleet, 'GET', '/api/schedules')).json()) as { schedules: { id: number; name: string; built_in: boolean }[] };
  for (const b of listed.schedules.filter((s) => s.built_in)) {
    const res = await api(fleet, 'POST', `/api/schedules/${b.id}/pause`, { reason: 'the soak serves canary alone' });
    if (!res.ok) throw new Error(`pausing built-in schedule ${b.name}: ${res.status} ${await res.text()}`);
  }
  const schedules: Evidence['schedules'] = [];
  for (const s of SOAK_SCHEDULES) {
    const res = await api(fleet, 'POST', '/api/schedules', s);
    if (res.status !== 201) throw new Error(`creating schedule ${s.name}: ${res.status} ${await res.text()}`);
    schedules.push({ id: ((await res.json()) as { id: number }).id, name: s.name, everySeconds: Number.parseInt(s.every, 10) });
  }
  const load = startLoad(fleet, opts.seed, 100);
  // Under way before the first fault: tasks accepted, occurrences completed.
  await eventually(async () => {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from wombat.runs where schedule_id = ${schedules[0]!.id} and state = 'completed'`;
    return row!.n >= 1 && load.answers.filter((a) => a.status === 202).length >= 5;
  }, 30_000);

  const faults: FaultRecord[] = [];
  const fuzzDuringOutage: SoakAnswer[] = [];
  const ctx = {
    fleet,
    pg,
    databaseUrl: pg.url,
    executionLog,
    recoveryScheduleId: schedules[0]!.id,
    submit: load.submit,
    async duringOutage() {
      for (const f of FUZZ_BODIES) fuzzDuringOutage.push({ ...(await post(fleet.apiUrl, f.path, f.body, CLIENT_DEADLINE_MS)), at: Date.now(), kind: 'fuzz' });
    },
  };
  const faultsFrom = Date.now();
  let lastDatabaseFault = new Date(faultsFrom);
  for (const f of opts.faults) {
    if (opts.faultsForMs !== undefined && Date.now() - faultsFrom > opts.faultsForMs) break;
    const rec = await injectFault(f, ctx);
    faults.push(rec);
    if (f.kind === 'pg-outage' || f.kind === 'pg-restart') lastDatabaseFault = new Date(rec.doneAt);
    opts.log(describeFault(rec));
  }

  // Quiet: no more faults, then no new work, then every run gets its time to end.
  await sleep(opts.quietMs ?? 5_000);
  await load.stop();
  for (const s of schedules) await eventually(async () => (await api(fleet, 'POST', `/api/schedules/${s.id}/pause`, { reason: 'soak settles' })).ok, 30_000);
  const settleFrom = Date.now();
  await eventually(async () => {
    // Settled includes the reconciler's repair of a lost settlement (a job pg-boss failed while its
    // run completed at that attempt): it runs every 30 s, so the checks below see its result.
    const [row] = await sql<{ runs: number; jobs: number; lost: number }[]>`
      select (select count(*)::int from wombat.runs where state in ('held', 'queued', 'running', 'retrying')) as runs,
             (select count(*)::int from pgboss.job where name = 'canary' and state in ('created', 'retry', 'active')) as jobs,
             (select count(*)::int from pgboss.job j join wombat.runs r on r.id = j.id
               where j.name = 'canary' and j.state = 'failed' and r.state = 'completed' and j.retry_count = r.attempts - 1) as lost`;
    return row!.runs === 0 && row!.jobs === 0 && row!.lost === 0;
  }, opts.settleMs ?? 90_000);
  const settledMs = Date.now() - settleFrom;
  opts.log(`settled in ${(settledMs / 1000).toFixed(1)} s`);

  const [beat] = await sql<{ age_ms: number }[]>`
    select coalesce((extract(epoch from now() - max(last_beat_at)) * 1000)::int, -1) as age_ms from wombat.engines where stopped_at is null`;
  const [after] = await sql<{ n: number }[]>`
    select count(*)::int as n from pgboss.job where name = 'canary' and state = 'completed' and completed_on > ${lastDatabaseFault}`;
  const beforeStop = { engineBeatAgeMs: beat!.age_ms, completedSinceLastDatabaseFault: after!.n, dead: fleet.slots.filter((s) => !s.current.proc.alive()).map((s) => s.name) };
  await fleet.stop();

  const rows = await readEvidenceRows(sql);
  const evidence: Evidence = { ...rows, executions: readExecutions(executionLog), lives: fleet.lives, answers: [...load.answers, ...fuzzDuringOutage], schedules, clientDeadlineMs: CLIENT_DEADLINE_MS };
  const findings = check(evidence);
  const runsByState: Record<string, number> = {};
  for (const r of rows.runs) runsByState[r.state] = (runsByState[r.state] ?? 0) + 1;
  const occurrences = schedules.map((s) => {
    const own = rows.runs.filter((r) => r.schedule_id === s.id && r.trigger === 'schedule');
    return {
      name: s.name,
      total: own.length,
      published: own.filter((r) => r.published_at).length,
      missed: own.filter((r) => r.state === 'missed').length,
      skipped: own.filter((r) => r.state === 'skipped').length,
    };
  });
  const report = { findings, evidence, faults, fuzzDuringOutage, runsByState, occurrences, beforeStop, settledMs };
  const summary = summarize(report);
  const ok = Object.values(findings.offenders).every((xs) => xs.length === 0);
  return { ...report, summary, ok };
}

const RUN_CHECKS: CheckName[] = ['executedTwice', 'completedTwice', 'lostWhileLived', 'failedHealthy', 'runJobMismatch', 'stuck', 'executionMismatch', 'unaccounted202'];

/** The summary table, then each failed check's offenders (for run checks: their execution lines, run and job rows). */
export function summarize(r: Omit<SoakReport, 'summary' | 'ok'>): string[] {
  const e = r.evidence;
  const retried = new Set(e.executions.filter((x) => x.attempt > 1).map((x) => x.run));
  const out = [
    `faults: ${r.faults.length}; runs: ${e.runs.length} (${Object.entries(r.runsByState).map(([k, v]) => `${k} ${v}`).join(', ')}); executions: ${e.executions.length}, runs with a retry executed: ${retried.size}`,
    `answers: ${Object.entries(r.findings.statusCounts).map(([k, v]) => `${k} x${v}`).join(', ')}`,
    `occurrences: ${r.occurrences.map((o) => `${o.name} ${o.total} (${o.published} published, ${o.skipped} skipped, ${o.missed} missed)`).join('; ')}`,
    `completed twice after a SIGKILL of the first worker (at-least-once, not a failure): ${r.findings.completedTwiceAfterKill.length}`,
    '',
    `${'check'.padEnd(82)}| count`,
    `${'-'.repeat(82)}|------`,
  ];
  for (const [k, label] of Object.entries(CHECKS) as [CheckName, string][]) out.push(`${label.padEnd(82)}| ${r.findings.offenders[k].length}`);
  for (const [k, label] of Object.entries(CHECKS) as [CheckName, string][]) {
    const ids = r.findings.offenders[k];
    if (ids.length === 0) continue;
    out.push('', `${label}: ${ids.length}`);
    if (RUN_CHECKS.includes(k)) out.push(...explainRuns(ids, e));
    else out.push(...ids.slice(0, 10).map((x) => `  ${x}`), ...(ids.length > 10 ? [`  ... and ${ids.length - 10} more`] : []));
  }
  return out;
}

export { randomFaults, type Fault, type FaultRecord, type Recovery };
