import { collectorConfigProblems, collectorFields, crawlConfigProblems, crawlFields, snapshotFields } from '@wombat/collectors';
import { ConfigError, type ConfigOf, databaseFields, type Field, int, list, loadConfig as load, optionalStr, processFields } from '@wombat/core/platform';
import { isJobType, JOB_TYPES, jobHeartbeatFields, type JobType } from '@wombat/core/jobs';
import { alertChannelFields, alertConfigProblems } from '@wombat/core/alerts';
import { backupFields } from '@wombat/core/backup';

/** How one queue is consumed: `workers` fetch loops, each taking up to `batchSize` jobs at a time. */
export interface QueueSettings {
  workers: number;
  batchSize: number;
}

/**
 * Defaults per queue. Trivial jobs (canary) are fetched 500 at a time by 4 loops: per-job fetches cap
 * pg-boss at about 1.3k jobs/s here, batches reach 20k+, and 4 loops keep PostgreSQL busy while
 * each waits on its three statements (16k jobs/s against 13k with 2 loops, bench/drain.ts, quiet
 * 2-core machine). Collector and backtest jobs run for seconds to minutes,
 * so each fetch loop takes one job and `workers` is how many run at once in this process.
 */
export const defaultQueueSettings: Record<JobType, QueueSettings> = {
  'collect-symbols': { workers: 1, batchSize: 1 },
  'collect-prices': { workers: 1, batchSize: 1 },
  'fetch-candles': { workers: 4, batchSize: 1 },
  canary: { workers: 4, batchSize: 500 },
  backtest: { workers: 2, batchSize: 1 },
  'crawl-prices': { workers: 1, batchSize: 1 },
  'collect-posts': { workers: 1, batchSize: 1 },
  'data-snapshot': { workers: 1, batchSize: 1 },
  'collection-report': { workers: 1, batchSize: 1 },
  'database-backup': { workers: 1, batchSize: 1 },
};

/** `job=n,job=n`: a count per job type. */
function perQueue(env: string, doc: string): Field<Partial<Record<JobType, number>>> {
  return {
    env,
    doc,
    parse(raw) {
      const out: Partial<Record<JobType, number>> = {};
      if (raw === undefined || raw.trim() === '') return out;
      for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
        const m = /^([a-z-]+)=(\d+)$/.exec(item);
        if (!m) throw new Error(`"${item}" must look like fetch-candles=4`);
        if (!isJobType(m[1])) throw new Error(`"${m[1]}" is not a job type; known: ${JOB_TYPES.join(', ')}`);
        const n = Number(m[2]);
        if (n < 1 || n > 1000) throw new Error(`${m[1]} must be between 1 and 1000`);
        out[m[1]] = n;
      }
      return out;
    },
  };
}

function num(env: string, doc: string, opts: { default: number; min: number; max: number }): Field<number> {
  return {
    env,
    doc,
    default: String(opts.default),
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return opts.default;
      const n = Number(raw.trim());
      if (!Number.isFinite(n) || n < opts.min || n > opts.max) throw new Error(`must be a number from ${opts.min} to ${opts.max}`);
      return n;
    },
  };
}

export const workerConfigSchema = {
  ...databaseFields,
  ...processFields,
  ...jobHeartbeatFields,
  ...collectorFields,
  ...crawlFields,
  ...snapshotFields,
  // The channels the collection reports go to (the engines deliver them).
  ...alertChannelFields,
  ...backupFields,
  queues: list('WORKER_QUEUES', `job types this process runs, comma-separated, or all (${JOB_TYPES.join(', ')})`, {
    default: ['all'],
    item: (v) => {
      if (v !== 'all' && !isJobType(v)) throw new Error(`"${v}" is not a job type; known: all, ${JOB_TYPES.join(', ')}`);
      return v;
    },
  }),
  concurrency: perQueue(
    'WORKER_CONCURRENCY',
    'fetch loops per queue in this process, e.g. fetch-candles=8,backtest=1 (defaults: fetch-candles=4, canary=4, backtest=2, others 1)',
  ),
  batchSize: perQueue('WORKER_BATCH_SIZE', 'jobs fetched at once per loop, e.g. canary=500 (default: canary=500, others 1)'),
  pollIntervalSeconds: num('WORKER_POLL_INTERVAL_SECONDS', 'backstop polling interval in seconds; NOTIFY wakes workers at once, polling finds retries whose delay has passed', {
    default: 2,
    min: 0.5,
    max: 60,
  }),
  historyFlushMs: int('WORKER_HISTORY_FLUSH_MS', 'run-history writes wait this many ms to be written together (0: the next event-loop turn; writes arriving during a write always go together in the next one)', {
    default: 0,
    min: 0,
    max: 1000,
  }),
  historyBatchRows: int('WORKER_HISTORY_BATCH_ROWS', 'a buffer holding this many run-history rows is written at once', { default: 1000, min: 1, max: 10000 }),
  progressIntervalMs: int('WORKER_PROGRESS_INTERVAL_MS', 'at most one progress write per job in this many ms', { default: 250, min: 0, max: 60000 }),
  heartbeatIntervalMs: int('WORKER_HEARTBEAT_INTERVAL_MS', 'heartbeat of this worker in wombat.workers; its runs count as lost after 3 missed beats', {
    default: 5_000,
    min: 100,
    max: 60_000,
  }),
  executionLog: optionalStr(
    'WORKER_EXECUTION_LOG',
    'a file this process appends one JSON line to at every handler start and end (run id, attempt, outcome): an audit of what really ran, for drills and chaos tests; unset: none',
  ),
  bossPoolSize: int(
    'WORKER_BOSS_POOL_SIZE',
    'connections in the pg-boss pool of this process (every fetch loop fetches and settles its batches through it); 0: the fetch loops of this process plus 2, from 4 to 10',
    { default: 0, min: 0, max: 100 },
  ),
};

export type WorkerConfig = ConfigOf<typeof workerConfigSchema>;

export function loadConfig(env: Record<string, string | undefined> = process.env): WorkerConfig {
  const config = load(workerConfigSchema, env);
  const crawlsPrices = config.queues.includes('all') || config.queues.includes('crawl-prices');
  const problems = [...collectorConfigProblems(config), ...crawlConfigProblems(config, { sourcesFile: crawlsPrices }), ...alertConfigProblems(config)];
  if (config.queues.includes('all') && config.queues.length > 1) problems.push('WORKER_QUEUES: give all, or a list of job types, not both');
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** The queues this process consumes and how, from the configuration. */
export function queueSettings(config: Pick<WorkerConfig, 'queues' | 'concurrency' | 'batchSize'>): Map<JobType, QueueSettings> {
  const jobs = config.queues.includes('all') ? JOB_TYPES : (config.queues as JobType[]);
  return new Map(
    jobs.map((job) => [
      job,
      {
        workers: config.concurrency[job] ?? defaultQueueSettings[job].workers,
        batchSize: config.batchSize[job] ?? defaultQueueSettings[job].batchSize,
      },
    ]),
  );
}
