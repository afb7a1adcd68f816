import type { PgBoss, Queue } from 'pg-boss';
import { int, type Field } from '../platform/config.ts';
import { JOB_HEARTBEAT_SECONDS, JOB_TYPES, OUTAGE_GRACE_DEFAULT_SECONDS, bossHeartbeatSeconds, jobDefaults, type JobType } from './contracts.ts';
import { resolveJobName, unknownJobMessage } from './job-names.ts';

/** pg-boss refuses a job expiration over 24 hours. */
const JOB_TIMEOUT_MAX_SECONDS = 86_400;

/** JOB_TIMEOUT_SECONDS: a default for every job type and overrides per type; what neither sets keeps the contract's timeout. */
export interface JobTimeouts {
  all?: number;
  byJob: Partial<Record<JobType, number>>;
}

function timeoutSeconds(v: string, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > JOB_TIMEOUT_MAX_SECONDS) throw new Error(`${what} must be whole seconds from 1 to ${JOB_TIMEOUT_MAX_SECONDS}, not "${v}"`);
  return Number(v);
}

/** `900`, `fetch-candles=600,backtest=7200`, or both: `900,backtest=7200`. */
export function parseJobTimeouts(raw: string | undefined): JobTimeouts {
  const out: JobTimeouts = { byJob: {} };
  if (raw === undefined || raw.trim() === '') return out;
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (out.all !== undefined) throw new Error('gives the default for every job type twice');
      out.all = timeoutSeconds(item, 'the default');
      continue;
    }
    const name = item.slice(0, eq).trim();
    const job = resolveJobName(name);
    if (!job) throw new Error(unknownJobMessage(name));
    out.byJob[job] = timeoutSeconds(item.slice(eq + 1).trim(), job);
  }
  return out;
}

/** The timeout a job of this type runs with unless its schedule or request gives one. */
export function jobTimeoutSeconds(job: JobType, timeouts?: JobTimeouts): number {
  return timeouts?.byJob[job] ?? timeouts?.all ?? jobDefaults[job].timeoutSeconds;
}

const jobTimeoutsField: Field<JobTimeouts> = {
  env: 'JOB_TIMEOUT_SECONDS',
  doc: `default timeout of every job type, and per type, e.g. 900 or 900,fetch-candles=600,backtest=7200 (1 to 86400 s); a job running longer is aborted and fails as timed out. A schedule's or a request's own timeout wins. Unset: each type's own (${JOB_TYPES.map((j) => `${j} ${jobDefaults[j].timeoutSeconds}`).join(', ')}). Written into the queues by npm run migrate`,
  parse: parseJobTimeouts,
};

/**
 * pg-boss keeps finished jobs a day (its own default is 7): the run history is Wombat's, and a
 * smaller job table is cheaper to fetch from and to scan (pg-boss's monitor reads all of it).
 */
export const JOB_KEEP_DEFAULT_HOURS = 24;

/**
 * pg-boss's queues, one per job type, with the settings of the job contracts: the
 * migrator (migrateAll) creates and updates them, and these are the settings it
 * writes into them.
 */
export const migrationFields = {
  jobTimeouts: jobTimeoutsField,
  outageGraceSeconds: int(
    'OUTAGE_GRACE_S',
    'a database outage up to this many seconds leaves every running job with its worker (pg-boss\'s job heartbeat limit is set from it, by npm run migrate); a worker that really died is still caught in about 20 s by the engine',
    { default: OUTAGE_GRACE_DEFAULT_SECONDS, min: 0, max: 3600 },
  ),
  jobKeepHours: int(
    'JOB_KEEP_HOURS',
    "pg-boss deletes a finished job (completed, failed or cancelled) this many hours after it ended; the run's history stays in wombat.runs for RUN_RETENTION_DAYS, and nothing of Wombat reads a finished job after its first 15 minutes. Written into the queues by npm run migrate, for jobs sent after it",
    { default: JOB_KEEP_DEFAULT_HOURS, min: 1, max: 2160 },
  ),
};

/**
 * Read by engines (which judge a job's heartbeat) and workers (which keep it): set it the same on
 * both. Drills and tests shorten it to play an outage longer than it without waiting the default out.
 */
export const jobHeartbeatFields = {
  jobHeartbeatSeconds: int(
    'JOB_HEARTBEAT_S',
    "a running job whose pg-boss heartbeat is older than this many seconds (counted from the database's last return) has lost its worker; workers refresh it every third of it. Set the same on engines and workers",
    { default: JOB_HEARTBEAT_SECONDS, min: 3, max: 600 },
  ),
};

export interface QueueSetup {
  outageGraceSeconds?: number;
  jobTimeouts?: JobTimeouts;
  /** Hours pg-boss keeps a finished job before deleting it (JOB_KEEP_HOURS). */
  jobKeepHours?: number;
}

/**
 * pg-boss queue settings for a job type: retries, timeout, heartbeat limit, LISTEN/NOTIFY wake-ups.
 * The queue's timeout is the type's default (JOB_TIMEOUT_SECONDS): a job sent without one of its
 * own takes it (see jobInsertFor), and the worker aborts a job that runs past it.
 */
export function queueOptions(job: JobType, opts: QueueSetup = {}): Omit<Queue, 'name'> {
  const d = jobDefaults[job];
  return {
    retryLimit: d.retryLimit,
    retryDelay: d.retryDelaySeconds,
    retryBackoff: d.retryBackoff,
    expireInSeconds: jobTimeoutSeconds(job, opts.jobTimeouts),
    deleteAfterSeconds: (opts.jobKeepHours ?? JOB_KEEP_DEFAULT_HOURS) * 3600,
    // Jobs take the queue's heartbeat limit (no job sets its own). pg-boss's monitor fails a job not
    // touched for this long; Wombat's reconciler decides sooner, allowing for outages (see contracts.ts).
    heartbeatSeconds: bossHeartbeatSeconds(opts.outageGraceSeconds ?? OUTAGE_GRACE_DEFAULT_SECONDS),
    notify: true,
  };
}

/**
 * Jobs that never run twice at once, whoever sent them (schedule, api, retry): pg-boss's
 * 'singleton' policy keeps one job of the queue active across every worker, the rest wait.
 * A policy is fixed when the queue is created.
 */
export const SINGLETON_QUEUES: ReadonlySet<JobType> = new Set<JobType>(['crawl-prices', 'collect-posts', 'database-backup', 'data-snapshot', 'collection-report']);

/** Creates every queue Wombat uses; safe to repeat. Run by the migrator. */
export async function ensureQueues(boss: PgBoss, opts: QueueSetup = {}): Promise<void> {
  const existing = new Set((await boss.getQueues()).map((q) => q.name));
  for (const job of JOB_TYPES) {
    if (existing.has(job)) await boss.updateQueue(job, queueOptions(job, opts));
    else await boss.createQueue(job, { ...queueOptions(job, opts), ...(SINGLETON_QUEUES.has(job) ? { policy: 'singleton' as const } : {}) });
  }
}
