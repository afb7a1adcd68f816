import { JOB_TYPES, type CoreTables } from '@wombat/core';
export { ACTIVE_RUN_STATES, FINISHED_RUN_STATES as FINISHED_STATES, RUN_STATES, type RunState as CliRunState } from '@wombat/core';
import { sql, type Kysely } from 'kysely';

/**
 * Read-only queries of the CLI. Writes go through core (and the api's run store),
 * never through SQL of the CLI's own.
 */


type Db = Kysely<CoreTables>;

export async function tableExists(db: Db, name: string): Promise<boolean> {
  const r = await sql<{ t: string | null }>`select to_regclass(${name})::text as t`.execute(db);
  return r.rows[0]?.t !== null && r.rows[0]?.t !== undefined;
}

export interface WorkerRow {
  id: string;
  host: string;
  pid: number;
  version: string;
  queues: string[];
  concurrency: number;
  started_at: Date;
  last_beat_at: Date;
  heartbeat_interval_ms: number;
  runs_in_hand: number;
  rss_bytes: number | null;
  stopped_at: Date | null;
  alive: boolean;
}

/** The worker registry (wombat.workers), newest heartbeat first; null when the table does not exist. */
export async function listWorkers(db: Db): Promise<WorkerRow[] | null> {
  if (!(await tableExists(db, 'wombat.workers'))) return null;
  const r = await sql<WorkerRow>`
    select id, host, pid, version, queues, concurrency, started_at, last_beat_at, heartbeat_interval_ms,
           runs_in_hand, rss_bytes, stopped_at,
           stopped_at is null and last_beat_at > now() - make_interval(secs => heartbeat_interval_ms * 3 / 1000.0) as alive
      from wombat.workers
     order by last_beat_at desc`.execute(db);
  return r.rows.map((w) => ({ ...w, rss_bytes: w.rss_bytes === null ? null : Number(w.rss_bytes) }));
}

export interface QueueStats {
  job: string;
  /** held + queued + retrying: published (or held) and not yet running. */
  waiting: number;
  running: number;
  completed: number;
  failed: number;
  /** failed / (completed + failed) over the window; null when nothing finished. */
  failure_rate: number | null;
}

/** Per job type: unfinished runs now, outcomes over the last `windowMinutes`. */
export async function queueStats(db: Db, windowMinutes: number): Promise<QueueStats[]> {
  const active = await sql<{ job: string; state: string; n: number }>`
    select job, state, count(*)::int as n from wombat.runs
     where state in ('held', 'queued', 'running', 'retrying') group by job, state`.execute(db);
  const done = await sql<{ job: string; state: string; n: number }>`
    select job, state, count(*)::int as n from wombat.runs
     where finished_at > now() - make_interval(mins => ${windowMinutes}) and state in ('completed', 'failed')
     group by job, state`.execute(db);
  const byJob = new Map<string, QueueStats>();
  const get = (job: string) => {
    let s = byJob.get(job);
    if (!s) byJob.set(job, (s = { job, waiting: 0, running: 0, completed: 0, failed: 0, failure_rate: null }));
    return s;
  };
  for (const job of JOB_TYPES) get(job);
  for (const r of active.rows) {
    if (r.state === 'running') get(r.job).running += r.n;
    else get(r.job).waiting += r.n;
  }
  for (const r of done.rows) {
    if (r.state === 'completed') get(r.job).completed += r.n;
    else get(r.job).failed += r.n;
  }
  for (const s of byJob.values()) s.failure_rate = s.completed + s.failed === 0 ? null : s.failed / (s.completed + s.failed);
  return [...byJob.values()].sort((a, b) => a.job.localeCompare(b.job));
}

export async function deadLetterCount(db: Db): Promise<number> {
  const r = await sql<{ n: number }>`select count(*)::int as n from wombat.runs where state = 'failed' and requeued_as is null`.execute(db);
  return r.rows[0]?.n ?? 0;
}

export interface OpenAlert {
  id: string;
  kind: string;
  severity: string;
  subject: string;
  opened_at: Date;
}

/** Open alerts (wombat.alerts, kept by the engines' alert evaluator), most severe and newest first. */
export async function openAlerts(db: Db, limit = 50): Promise<OpenAlert[]> {
  const r = await sql<OpenAlert>`
    select id::text as id, kind, severity, subject, opened_at from wombat.alerts
     where state = 'open'
     order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, opened_at desc
     limit ${limit}`.execute(db);
  return r.rows;
}
