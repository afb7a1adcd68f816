import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createLoopSupervisor, type ErrorReporter, type Job, type Logger, type PgBoss, type Sql } from '@wombat/core/platform';
import { CANCEL_CHANNEL, type Exchange, EXCHANGES, JOB_HEARTBEAT_SECONDS, jobHeartbeatRefreshSeconds, type JobType } from '@wombat/core/jobs';
import { beatWorker, markWorkerStopped, registerWorker } from '@wombat/core/workers';
import { handBackAttempts, reportFailedRuns } from '@wombat/core/runs';
import type { Kysely } from 'kysely';
import type { CoreTables } from '@wombat/core/tables';
import type { QueueSettings } from './config.ts';
import type { CollectorsPort, CrawlsPort } from './collectors-port.ts';
import type { BackupPort } from './jobs/types.ts';
import { executeJob, type ActiveJob } from './execute.ts';
import { openExecutionLog } from './execution-log.ts';
import { createHistoryWriter } from './history.ts';
import { createLostSettles } from './lost-settles.ts';
import { defaultHandlers } from './jobs/handlers.ts';
import type { HandlerDeps, JobHandlers } from './jobs/types.ts';

export interface WorkerOptions {
  db: Kysely<CoreTables>;
  /** The postgres.js client under `db`: history writes, and the cancel LISTEN without `listenSql`. */
  sql: Sql;
  /** For the cancel LISTEN: a client on the session address (DATABASE_SESSION_URL). */
  listenSql?: Sql;
  /** A pg-boss instance started with role 'worker'. */
  boss: PgBoss;
  log: Logger;
  queues: Map<JobType, QueueSettings>;
  collectors?: CollectorsPort;
  crawls?: CrawlsPort;
  backup?: BackupPort;
  /** Exchanges collect-prices covers when its params name none (default: all). */
  defaultExchanges?: Exchange[];
  /** The alert channels collection reports are recorded for. */
  reportChannels?: HandlerDeps['reportChannels'];
  /** Where data-snapshot writes (SNAPSHOT_DIR); unset: that job fails saying so. */
  snapshots?: HandlerDeps['snapshots'];
  handlers?: Partial<JobHandlers>;
  pollIntervalSeconds?: number;
  historyFlushMs?: number;
  historyBatchRows?: number;
  progressIntervalMs?: number;
  /** How long stop() lets running jobs finish before it aborts them and hands them back. */
  drainTimeoutMs?: number;
  /** How long a job's final history write may hold up settling it in pg-boss (default 5000 ms; the write is retried until it lands). */
  historyWaitMs?: number;
  /** Heartbeat of this process's row in wombat.workers (default 5000 ms); live while younger than 3 intervals. */
  heartbeatIntervalMs?: number;
  /** The engines' limit on a job's pg-boss heartbeat (JOB_HEARTBEAT_S, default 15): touched every third of it. */
  jobHeartbeatSeconds?: number;
  /** Shown in the registry row. */
  version?: string;
  /** A file to append every handler start and end to (WORKER_EXECUTION_LOG). */
  executionLog?: string;
  /**
   * The heartbeat (this process's pool, then pg-boss's) completing no round this long, for a
   * reason a restart may fix, calls onStall (LOOP_STALL_EXIT_MS); 0 or unset: never.
   */
  loopStallExitMs?: number;
  onStall?: (info: { loop: string; failingMs: number }) => void;
  /** Whether the database answers a connection of its own (see createLoopSupervisor). */
  probe?: () => Promise<boolean>;
  /** Where runs that failed for good are reported (SENTRY_DSN); unset: nowhere. */
  reporter?: ErrorReporter;
}

export interface Worker {
  start(): Promise<void>;
  /** Stops fetching, drains or hands back running jobs, flushes history. Memoized. */
  stop(): Promise<void>;
  /** Run ids of the jobs running in this process now. */
  running(): string[];
  /** This process's id in wombat.workers (recorded on the runs it starts). */
  readonly id: string;
}

/**
 * The job runner: one pg-boss fetch loop per configured worker slot and queue. Each loop fetches a
 * batch, runs its jobs concurrently, records their history in one buffered write, and settles
 * each job on its own (perJobResults). After a non-empty batch the loop wakes itself, so it keeps
 * fetching while there is work, even at batch size 1 where pg-boss's burst mode does not apply;
 * NOTIFY wakes idle loops at once, and polling every pollIntervalSeconds finds retries whose
 * delay has passed.
 */
export function createWorker(opts: WorkerOptions): Worker {
  const workerId = randomUUID();
  const log = opts.log.child({ component: 'worker', workerId });
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5_000;
  const supervisor = createLoopSupervisor({
    log,
    stallMs: opts.loopStallExitMs ?? 0,
    onStall: (info) => opts.onStall?.(info),
    ...(opts.probe ? { probe: opts.probe } : {}),
  });
  const history = createHistoryWriter({ sql: opts.sql, log, flushMs: opts.historyFlushMs ?? 0, batchRows: opts.historyBatchRows ?? 1000 });
  const lostSettles = createLostSettles({ sql: opts.sql, log });
  /** pg-boss names the loop an error came from; a loop's error may mean its last batch was not settled. */
  const onBossError = (err: unknown) => {
    const loop = (err as { worker?: unknown } | null)?.worker;
    if (typeof loop === 'string') lostSettles.loopFailed(loop);
  };
  const active = new Map<string, ActiveJob>();
  const handedBack = new Map<string, { queue: JobType; attempts: number }>();
  const shutdown = new AbortController();
  const handlers: JobHandlers = { ...defaultHandlers, ...opts.handlers };
  const loops: { queue: JobType; id: string }[] = [];
  let unlisten: (() => Promise<void>) | undefined;
  let stopping: Promise<void> | undefined;

  const executions = opts.executionLog ? openExecutionLog(opts.executionLog, workerId) : undefined;
  const executeDeps = {
    ...(executions ? { executions } : {}),
    handlers,
    handlerDeps: {
      db: opts.db,
      boss: opts.boss,
      collectors: opts.collectors,
      crawls: opts.crawls,
      ...(opts.backup ? { backup: opts.backup } : {}),
      ...(opts.snapshots ? { snapshots: opts.snapshots } : {}),
      ...(opts.reportChannels ? { reportChannels: opts.reportChannels } : {}),
      defaultExchanges: opts.defaultExchanges ?? [...EXCHANGES],
      log: opts.log,
    },
    history,
    active,
    shutdown: shutdown.signal,
    handedBack,
    progressIntervalMs: opts.progressIntervalMs ?? 250,
    workerId,
    ...(opts.historyWaitMs !== undefined ? { historyWaitMs: opts.historyWaitMs } : {}),
    ...(opts.reporter?.enabled ? { onRunFailed: reportFailure(opts.db, opts.reporter, log) } : {}),
    retryLimit: async (queue: JobType, id: string) => {
      const job = await opts.boss.getJobById(queue, id);
      if (!job) throw new Error(`job ${id} is not in queue ${queue}`);
      return job.retryLimit;
    },
    log,
  };

  const registration = {
    id: workerId,
    host: hostname(),
    pid: process.pid,
    version: opts.version ?? '0.0.0',
    queueSettings: [...opts.queues].map(([queue, q]) => ({ queue, loops: q.workers, batchSize: q.batchSize })),
    heartbeatIntervalMs,
  };

  /**
   * One beat: runs in hand and memory; registers again if the row was purged meanwhile.
   * Then one trivial statement through pg-boss's own pool, which fetches and settles the
   * jobs: a beat completes only when both pools work.
   */
  async function beat(): Promise<void> {
    const alive = await beatWorker(opts.db, workerId, { runsInHand: active.size, rssBytes: process.memoryUsage.rss() });
    if (!alive) await registerWorker(opts.db, registration);
    await opts.boss.getDb().executeSql('select 1');
  }

  async function startLoop(queue: JobType, settings: QueueSettings): Promise<void> {
    let id = '';
    id = await opts.boss.work(
      queue,
      {
        batchSize: settings.batchSize,
        includeMetadata: false,
        perJobResults: true,
        burstWhenBatchFull: true,
        pollingIntervalSeconds: opts.pollIntervalSeconds ?? 2,
        notifyPollingIntervalSeconds: opts.pollIntervalSeconds ?? 2,
        heartbeatRefreshSeconds: jobHeartbeatRefreshSeconds(opts.jobHeartbeatSeconds ?? JOB_HEARTBEAT_SECONDS),
      },
      async (jobs: Job<object>[]) => {
        lostSettles.batchStarted(id);
        const results = await Promise.all(jobs.map((job) => executeJob(queue, job, executeDeps)));
        // results[i] is jobs[i]'s outcome.
        lostSettles.batchEnded(
          id,
          jobs.flatMap((job, i) => (results[i]?.status === 'completed' ? [{ id: job.id, job: queue, attempts: job.retryCount + 1 }] : [])),
        );
        if (!shutdown.signal.aborted && stopping === undefined) opts.boss.notifyWorker(id);
        return results;
      },
    );
    loops.push({ queue, id });
  }

  return {
    async start() {
      const listener = await (opts.listenSql ?? opts.sql).listen(CANCEL_CHANNEL, (runId) => {
        const job = active.get(runId);
        if (!job) return;
        log.info({ runId, job: job.queue }, 'cancelling job');
        job.cancel.abort(new Error('cancelled'));
      });
      unlisten = () => listener.unlisten();
      opts.boss.on('error', onBossError);
      // Registered before the first fetch, so every run this process starts names a registered worker.
      await registerWorker(opts.db, registration);
      // Failures are logged by the supervisor ("heartbeat failed; will retry").
      supervisor.every('heartbeat', heartbeatIntervalMs, () => beat(), { roundTimeoutMs: Math.min(Math.max(2 * heartbeatIntervalMs, 5_000), 60_000) });
      for (const [queue, settings] of opts.queues) {
        for (let i = 0; i < settings.workers; i++) await startLoop(queue, settings);
      }
      log.info({ queues: Object.fromEntries(opts.queues) }, 'worker started');
    },
    stop() {
      stopping ??= (async () => {
        const drainMs = opts.drainTimeoutMs ?? 10_000;
        const timer = setTimeout(() => {
          if (active.size > 0) log.warn({ running: active.size }, 'drain deadline passed, handing jobs back');
          shutdown.abort(new Error('worker stopping'));
        }, drainMs);
        try {
          await Promise.all(loops.map((l) => opts.boss.offWork(l.queue, { id: l.id, wait: true })));
        } finally {
          clearTimeout(timer);
        }
        // pg-boss has settled every batch by now: the jobs the shutdown stopped go back to the queue
        // with their attempt unspent.
        if (handedBack.size > 0) {
          const stopped = [...handedBack].map(([id, h]) => ({ id, job: h.queue, attempts: h.attempts }));
          await handBackAttempts(opts.db, stopped).then(
            (back) => log.info({ handedBack: back.length, of: stopped.length, runIds: back.slice(0, 20) }, 'jobs handed back (the rest had been superseded)'),
            (err: unknown) => log.error({ err, count: stopped.length }, 'could not hand the jobs back (the engine retries them)'),
          );
        }
        await history.close();
        await lostSettles.close();
        opts.boss.off('error', onBossError);
        executions?.close();
        supervisor.stop();
        await markWorkerStopped(opts.db, workerId).catch((err) => log.warn({ err }, 'could not mark the worker stopped'));
        await unlisten?.();
        log.info('worker stopped');
      })();
      return stopping;
    },
    running: () => [...active.keys()],
    id: workerId,
  };
}

/** Reports a run that failed for good; its schedule is read from the run history, whose final write has been awaited. */
function reportFailure(db: Kysely<CoreTables>, reporter: ErrorReporter, log: Logger) {
  return (f: { runId: string; attempt: number; error: unknown }) =>
    void reportFailedRuns(db, reporter, [{ runId: f.runId, attempt: f.attempt, error: f.error }]).catch((err) => log.warn({ err, runId: f.runId }, 'could not report the failed run'));
}
