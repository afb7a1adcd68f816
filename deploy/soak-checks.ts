/**
 * What a soak must never show, counted from the execution log, the run history,
 * pg-boss's jobs, the api's answers and the processes' exits. Each check lists its
 * offenders (run ids, or a description); every count is 0 on a correct system.
 */
import type postgres from 'postgres';
import type { Answer } from './outage-harness.ts';
import { byRun, type Execution } from './soak-executions.ts';
import type { Life } from './soak-fleet.ts';

type Sql = ReturnType<typeof postgres>;

export const CHECKS = {
  executedTwice: 'executed twice: two executions of a run overlapping in time',
  completedTwice: 'executed twice: more than one execution ended completed (no SIGKILL explains it)',
  lostWhileLived: 'worker_lost while the worker lived',
  failedHealthy: 'healthy canary failed other than with its killed worker',
  runJobMismatch: 'run state contradicts its pg-boss job',
  stuck: 'unfinished after settling (held, queued, running, retrying)',
  duplicateOccurrences: 'occurrence recorded twice',
  uncoveredOccurrences: 'due occurrence with no row',
  unaccounted202: 'answered 202 without its run and job',
  server5xx: 'api answered 5xx other than 503',
  unexpectedAnswers: 'submission answered other than 202 / 503 database_unavailable',
  hung: 'request unanswered before the client deadline',
  fuzzNot400: 'fuzzed NUL/surrogate key not answered 400',
  badExits: 'process not exiting 0 on SIGTERM, or dying unbidden',
  fatalLogged: 'process logged at level fatal',
  executionMismatch: 'run completed with no execution that ended completed',
} as const;
export type CheckName = keyof typeof CHECKS;

export interface SoakAnswer extends Answer {
  /** Request body (params) of a task; a fuzzed body is not kept. */
  params?: object;
}

export interface RunRow {
  id: string;
  job: string;
  trigger: string;
  schedule_id: number | null;
  scheduled_for: Date | null;
  state: string;
  published_at: Date | null;
  error: { code?: string } | null;
  attempts: number;
  worker_id: string | null;
  created_at: Date;
  updated_at: Date;
}
export interface JobRow {
  id: string;
  name: string;
  state: string;
  retry_count: number;
}

export interface Evidence {
  runs: RunRow[];
  jobs: JobRow[];
  executions: Execution[];
  lives: Life[];
  answers: SoakAnswer[];
  schedules: { id: number; name: string; everySeconds: number }[];
  /** Requests sent this long before the api was killed may fail to connect. */
  clientDeadlineMs: number;
}

export interface Findings {
  offenders: Record<CheckName, string[]>;
  /** Two completed executions after the first one's worker was SIGKILLed: at-least-once, counted apart. */
  completedTwiceAfterKill: string[];
  statusCounts: Record<string, number>;
}

const UNFINISHED = new Set(['held', 'queued', 'running', 'retrying']);
const FINAL_JOB = new Set(['completed', 'failed', 'cancelled']);

export async function readEvidenceRows(sql: Sql): Promise<{ runs: RunRow[]; jobs: JobRow[] }> {
  const runs = await sql<RunRow[]>`
    select id, job, trigger, schedule_id, scheduled_for, state, published_at, error, attempts, worker_id, created_at, updated_at
    from wombat.runs order by created_at`;
  // schedule_id is a bigint, which postgres.js reads as text.
  for (const r of runs) if (r.schedule_id !== null) r.schedule_id = Number(r.schedule_id);
  // Every run's job, whatever its queue, and every canary job (one without a run is a finding).
  const jobs = await sql<JobRow[]>`
    select j.id, j.name, j.state, j.retry_count from pgboss.job j
    where j.name = 'canary' or exists (select 1 from wombat.runs r where r.id = j.id)`;
  return { runs, jobs };
}

/** Died without the soak asking, or SIGKILLed by it: its executions with no end line were cut short by death. */
function killed(l: Life | undefined): boolean {
  return l !== undefined && (l.sent?.signal === 'SIGKILL' || (l.exit !== undefined && l.sent === undefined));
}

export function check(e: Evidence): Findings {
  const o = Object.fromEntries(Object.keys(CHECKS).map((k) => [k, [] as string[]])) as Record<CheckName, string[]>;
  const completedTwiceAfterKill: string[] = [];
  const lifeByPid = new Map(e.lives.map((l) => [l.pid, l]));
  const lifeByWorker = new Map(e.lives.filter((l) => l.workerId).map((l) => [l.workerId!, l]));
  const runs = new Map(e.runs.map((r) => [r.id, r]));
  const jobs = new Map(e.jobs.map((j) => [j.id, j]));
  const execs = byRun(e.executions);

  for (const [run, xs] of execs) {
    // An execution with no end line lasted until its process ended (or still runs).
    const endOf = (x: Execution) => x.end ?? lifeByPid.get(x.pid)?.endedAt ?? Number.POSITIVE_INFINITY;
    const sorted = [...xs].sort((a, b) => a.start - b.start);
    let reach = Number.NEGATIVE_INFINITY;
    let overlapped = false;
    for (const x of sorted) {
      if (x.start < reach) overlapped = true;
      reach = Math.max(reach, endOf(x));
    }
    if (overlapped) o.executedTwice.push(run);
    const done = sorted.filter((x) => x.outcome === 'completed');
    if (done.length > 1) {
      // A worker SIGKILLed after its handler ended, before pg-boss heard of it: the job runs again (at-least-once).
      const explained = done.slice(0, -1).every((x) => {
        const l = lifeByPid.get(x.pid);
        return killed(l) && l!.sent !== undefined && l!.sent.at >= x.end! && l!.sent.at - x.end! < 30_000;
      });
      (explained ? completedTwiceAfterKill : o.completedTwice).push(run);
    }
  }

  for (const r of e.runs) {
    const xs = execs.get(r.id) ?? [];
    let explained = false;
    if (r.error?.code === 'worker_lost') {
      // An execution cut short by its process's end (a SIGTERM that ended badly is reported under badExits).
      explained = xs.some((x) => x.end === undefined && (killed(lifeByPid.get(x.pid)) || lifeByPid.get(x.pid)?.exit !== undefined));
      if (!explained && xs.length === 0) {
        // No execution began: a worker that fetched the job and was killed before the handler started.
        const named = r.worker_id ? lifeByWorker.get(r.worker_id) : undefined;
        explained = named
          ? killed(named)
          : e.lives.some((l) => l.service === 'worker' && killed(l) && (l.endedAt ?? 0) >= r.created_at.getTime() && (l.endedAt ?? 0) <= r.updated_at.getTime());
      }
      if (!explained) o.lostWhileLived.push(r.id);
    }
    // The soak's canaries never ask to fail and sleep far less than their timeout: only a lost worker may fail one.
    if (r.state === 'failed' && !explained && r.error?.code !== 'worker_lost') o.failedHealthy.push(r.id);
    if (UNFINISHED.has(r.state)) o.stuck.push(r.id);
    if (r.state === 'completed' && !xs.some((x) => x.outcome === 'completed')) o.executionMismatch.push(r.id);
    const j = jobs.get(r.id);
    if (!j || j.name !== r.job) {
      if (r.published_at && !['held', 'skipped', 'missed'].includes(r.state)) o.runJobMismatch.push(r.id);
      continue;
    }
    const agree = r.state === j.state || (UNFINISHED.has(r.state) && !FINAL_JOB.has(j.state));
    if (!agree) o.runJobMismatch.push(r.id);
  }
  for (const j of e.jobs) if (!runs.has(j.id)) o.runJobMismatch.push(j.id);

  for (const s of e.schedules) {
    const instants = e.runs
      .filter((r) => r.schedule_id === s.id && r.trigger === 'schedule' && r.scheduled_for)
      .map((r) => r.scheduled_for!.getTime())
      .sort((a, b) => a - b);
    const step = s.everySeconds * 1000;
    for (let i = 1; i < instants.length; i++) {
      const gap = instants[i]! - instants[i - 1]!;
      if (gap === 0) o.duplicateOccurrences.push(`${s.name} ${new Date(instants[i]!).toISOString()}`);
      for (let t = instants[i - 1]! + step; t < instants[i]!; t += step) o.uncoveredOccurrences.push(`${s.name} ${new Date(t).toISOString()}`);
    }
  }

  const statusCounts: Record<string, number> = {};
  const apiLives = e.lives.filter((l) => l.service === 'api');
  // A connection refused or reset is expected from a request sent shortly before the api was killed until its successor was ready.
  const apiDown = (at: number) =>
    apiLives.some((l, i) => l.sent !== undefined && !l.sent.final && at >= l.sent.at - e.clientDeadlineMs && at <= (apiLives[i + 1]?.readyAt ?? Number.POSITIVE_INFINITY));
  for (const a of e.answers) {
    const key = a.status === 0 ? (a.timedOut ? 'timeout' : 'no connection') : String(a.status);
    statusCounts[key] = (statusCounts[key] ?? 0) + 1;
    const label = `${a.kind} at ${new Date(a.at).toISOString().slice(11, 23)}: ${a.status}${a.code ? ` ${a.code}` : ''}${a.failure ? ` (${a.failure})` : ''}`;
    if (a.status >= 500 && a.status !== 503) o.server5xx.push(label);
    if (a.timedOut) o.hung.push(label);
    if (a.kind === 'fuzz') {
      if (a.status !== 400 && !(a.status === 0 && !a.timedOut && apiDown(a.at))) o.fuzzNot400.push(label);
      continue;
    }
    if (a.status === 202) {
      if (!a.taskId || !runs.has(a.taskId) || !jobs.has(a.taskId)) o.unaccounted202.push(a.taskId ?? label);
    } else if (!(a.status === 503 && a.code === 'database_unavailable') && !(a.status === 0 && !a.timedOut && apiDown(a.at))) {
      o.unexpectedAnswers.push(label);
    }
  }

  for (const l of e.lives) {
    const name = `${l.slot} pid ${l.pid}`;
    // The last error the process logged usually says why it exited as it did.
    const lastError = () => l.proc.output().split('\n').filter((x) => /"level":(50|60)/.test(x)).at(-1)?.slice(0, 600) ?? 'no error logged';
    if (l.sent?.signal === 'SIGTERM' && l.exit?.code !== 0) o.badExits.push(`${name}: SIGTERM, exit ${l.exit?.code ?? l.exit?.signal ?? 'still running'}; ${lastError()}`);
    if (!l.sent && l.exit) o.badExits.push(`${name}: died unbidden, exit ${l.exit.code ?? l.exit.signal}; ${lastError()}`);
    if (l.proc.fatalLines().length > 0) o.fatalLogged.push(`${name}: ${l.proc.fatalLines()[0]!.slice(0, 300)}`);
  }
  return { offenders: o, completedTwiceAfterKill, statusCounts };
}

/** The execution lines, run row and job row of each offending run, for a report. */
export function explainRuns(ids: string[], e: Evidence, limit = 10): string[] {
  const execs = byRun(e.executions);
  const lines: string[] = [];
  for (const id of ids.slice(0, limit)) {
    const r = e.runs.find((x) => x.id === id);
    const j = e.jobs.find((x) => x.id === id);
    lines.push(`  run ${id}`);
    lines.push(`    run: ${r ? JSON.stringify({ state: r.state, attempts: r.attempts, worker_id: r.worker_id, error: r.error, trigger: r.trigger, schedule_id: r.schedule_id }) : 'none'}`);
    lines.push(`    job: ${j ? JSON.stringify({ state: j.state, retry_count: j.retry_count }) : 'none'}`);
    for (const x of execs.get(id) ?? []) {
      const l = e.lives.find((v) => v.pid === x.pid);
      const fate = l?.sent ? `${l.sent.signal} at ${l.sent.at}` : l?.exit ? `exited ${l.exit.code}` : 'alive';
      for (const line of x.lines) lines.push(`    ${JSON.stringify(line)}`);
      if (x.end === undefined) lines.push(`    (no end; ${l?.slot ?? 'process'} pid ${x.pid}: ${fate}, ended at ${l?.endedAt ?? '-'})`);
    }
  }
  if (ids.length > limit) lines.push(`  ... and ${ids.length - limit} more`);
  return lines;
}
