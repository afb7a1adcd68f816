import { createCollectors, collectorsOptionsFromConfig, createCrawls, snapshotSettings } from '@wombat/collectors';
import { createDatabase, createSql, databaseDeadlines, type ErrorReporter, type Fatal, type Lifecycle, type Logger, resolveDatabaseAddresses, resolveServiceDatabase, serviceStallExit, startBoss } from '@wombat/core/platform';
import { channelNames } from '@wombat/core/alerts';
import pkg from '../package.json' with { type: 'json' };
import type { CollectorsPort } from './collectors-port.ts';
import { queueSettings, type WorkerConfig } from './config.ts';
import type { BackupPort, JobHandlers } from './jobs/types.ts';
import { backupDatabase } from '@wombat/core/backup';
import { createWorker, type Worker } from './worker.ts';

/**
 * Starts a worker service from its configuration and registers every stop step on `lifecycle`
 * (pools first, intake last, so stop runs intake -> drain -> pools).
 */
export async function startService(
  config: WorkerConfig,
  deps: { log: Logger; lifecycle: Lifecycle; fatal?: Fatal; reporter?: ErrorReporter; collectors?: () => Promise<CollectorsPort & { close?(): Promise<void> }>; handlers?: Partial<JobHandlers> },
): Promise<Worker> {
  const { log, lifecycle } = deps;
  const resolved = await resolveServiceDatabase(config, { log, lifecycle });

  const addr = await resolveDatabaseAddresses({ url: resolved.url, sessionUrl: config.databaseSessionUrl, log, timeoutMs: config.databaseConnectTimeoutMs });
  const database = createDatabase({ url: addr.url, pooled: addr.pooled, poolSize: config.databasePoolSize, applicationName: 'wombat-worker', ...databaseDeadlines(config) });
  lifecycle.onStop('database', () => database.close());
  // The cancel LISTEN holds one connection of its own on the session address.
  const listenSql = addr.pooled ? createSql({ url: addr.sessionUrl, poolSize: 1, applicationName: 'wombat-worker', ...databaseDeadlines(config) }) : database.sql;
  if (listenSql !== database.sql) lifecycle.onStop('session connection', () => listenSql.end({ timeout: 1 }));
  // A loop waiting for a connection to settle its batch past the connect deadline makes pg-boss
  // fail the whole batch, although its handlers completed: one connection per loop and two more for
  // the heartbeat and the job-heartbeat touches, up to pg-boss's own default of 10 (loops of idle
  // queues only poll).
  const queues = queueSettings(config);
  const loops = [...queues.values()].reduce((n, q) => n + q.workers, 0);
  const bossPoolSize = config.bossPoolSize || Math.min(10, Math.max(4, loops + 2));
  // A worker's pg-boss LISTENs for new jobs on a connection of its pool's settings: the session address.
  const boss = await startBoss({ url: addr.sessionUrl, role: 'worker', log, poolSize: bossPoolSize, connectTimeoutMs: config.databaseConnectTimeoutMs });
  lifecycle.onStop('pg-boss', () => boss.stop({ graceful: false, close: true }));
  const collectors = deps.collectors ? await deps.collectors() : createCollectors(collectorsOptionsFromConfig(config, { log, db: database.db, sessionUrl: addr.sessionUrl }));
  if (collectors.close) lifecycle.onStop('collectors', () => collectors.close!());

  const worker = createWorker({
    db: database.db,
    sql: database.sql,
    listenSql,
    boss,
    log,
    queues,
    collectors,
    crawls: createCrawls(config, { log, db: database.db }),
    ...(config.backupDir ? { backup: backupPort(config, config.backupDir, addr.sessionUrl) } : {}),
    // collect-prices without exchanges fans out over the exchanges this worker can reach.
    defaultExchanges: config.kisAppKey ? ['upbit', 'kis'] : ['upbit'],
    ...(config.snapshotDir ? { snapshots: snapshotSettings(config) } : {}),
    reportChannels: channelNames(config),
    ...(deps.handlers ? { handlers: deps.handlers } : {}),
    pollIntervalSeconds: config.pollIntervalSeconds,
    historyFlushMs: config.historyFlushMs,
    historyBatchRows: config.historyBatchRows,
    progressIntervalMs: config.progressIntervalMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    jobHeartbeatSeconds: config.jobHeartbeatSeconds,
    loopStallExitMs: config.loopStallExitMs,
    ...serviceStallExit('worker', deps.fatal, { url: resolved.url, connectTimeoutMs: config.databaseConnectTimeoutMs }),
    version: pkg.version,
    ...(config.executionLog ? { executionLog: config.executionLog } : {}),
    ...(deps.reporter ? { reporter: deps.reporter } : {}),
    // Leaves time after the drain (at least 3 s, 40 % of the deadline) to let pg-boss settle the
    // stopped jobs, hand them back, flush history and close pools, on a busy machine too.
    drainTimeoutMs: Math.max(500, config.shutdownTimeoutMs - Math.max(3000, Math.round(0.4 * config.shutdownTimeoutMs))),
  });
  lifecycle.onStop('worker', () => worker.stop());
  await worker.start();
  return worker;
}

/** Backups with this worker's settings, on the database's direct address (one long snapshot). */
function backupPort(config: WorkerConfig, dir: string, url: string): BackupPort {
  return {
    run: (log, signal) => backupDatabase({ url, dir, format: config.backupFormat, keepDaily: config.backupKeepDaily, keepWeekly: config.backupKeepWeekly, log, ...(signal ? { signal } : {}) }),
  };
}
