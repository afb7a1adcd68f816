import type { PgBoss, Queue } from 'pg-boss';
import { int } from '../platform/config.ts';
import { JOB_HEARTBEAT_SECONDS, JOB_TYPES, OUTAGE_GRACE_DEFAULT_SECONDS, bossHeartbeatSeconds, jobDefaults, type JobType } from './contracts.ts';

/**
 * pg-boss's queues, one per job type, with the settings of the job contracts: the
 * migrator (migrateAll) creates and updates them, and these are the settings it
 * writes into them.
 */
export const migrationFields = {
  outageGraceSeconds: int(
    'OUTAGE_GRACE_S',
    'a database outage up to this many seconds leaves every running job with its worker (pg-boss\'s job heartbeat limit is set from it, by npm run migrate); a worker that really died is still caught in about 20 s by the engine',
    { default: OUTAGE_GRACE_DEFAULT_SECONDS, min: 0, max: 3600 },
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

/** pg-boss queue settings for a job type: retries, timeout, heartbeat limit, LISTEN/NOTIFY wake-ups. */
export function queueOptions(job: JobType, opts: { outageGraceSeconds?: number } = {}): Omit<Queue, 'name'> {
  const d = jobDefaults[job];
  return {
    retryLimit: d.retryLimit,
    retryDelay: d.retryDelaySeconds,
    retryBackoff: d.retryBackoff,
    expireInSeconds: d.timeoutSeconds,
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
export async function ensureQueues(boss: PgBoss, opts: { outageGraceSeconds?: number } = {}): Promise<void> {
  const existing = new Set((await boss.getQueues()).map((q) => q.name));
  for (const job of JOB_TYPES) {
    if (existing.has(job)) await boss.updateQueue(job, queueOptions(job, opts));
    else await boss.createQueue(job, { ...queueOptions(job, opts), ...(SINGLETON_QUEUES.has(job) ? { policy: 'singleton' as const } : {}) });
  }
}
