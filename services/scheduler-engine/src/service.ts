import { createDatabase, createSql, databaseDeadlines, type ErrorReporter, type Fatal, type Lifecycle, type Logger, resolveDatabaseAddresses, resolveServiceDatabase, serviceStallExit, startBoss } from '@wombat/core/platform';
import { reportFailedRuns } from '@wombat/core/runs';
import { createAlerting, watchedPaths } from '@wombat/core/alerts';
import pkg from '../package.json' with { type: 'json' };
import { builtInSchedules, disabledBuiltIns, reportSchedules } from './built-ins.ts';
import type { EngineConfig } from './config.ts';
import { createEngine, type Engine, type EngineOptions } from './engine.ts';

/** The engine's options from its configuration: built-in schedules, intervals, retention. */
export function engineOptions(config: EngineConfig, ctx: { host: string; pid: number }): EngineOptions {
  return {
    enabled: config.enableScheduler,
    host: ctx.host,
    pid: ctx.pid,
    builtIns: builtInSchedules(config),
    disabledBuiltIns: disabledBuiltIns(config),
    defaultSchedules: reportSchedules(config),
    version: pkg.version,
    reconcileIntervalMs: config.reconcileIntervalMs,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    misfireGraceMs: config.misfireGraceMs,
    heldRunCheckMs: config.heldRunCheckMs,
    runReconcileIntervalMs: config.runReconcileIntervalMs,
    jobHeartbeatSeconds: config.jobHeartbeatSeconds,
    runCountsFoldMs: config.runCountsFoldMs,
    maintenanceIntervalMs: config.maintenanceIntervalMs,
    taskResultTtlDays: config.taskResultTtlDays,
    runRetentionDays: config.runRetentionDays,
    loopStallExitMs: config.loopStallExitMs,
  };
}

/**
 * Starts the engine process's parts in order, registering each with the
 * lifecycle so stop runs engine -> pg-boss -> pool -> embedded Postgres.
 */
export async function startService(
  config: EngineConfig,
  ctx: { log: Logger; lifecycle: Lifecycle; host: string; pid: number; fatal?: Fatal; reporter?: ErrorReporter },
): Promise<Engine> {
  const { log, lifecycle } = ctx;
  const pg = await resolveServiceDatabase(config, { log, lifecycle });
  const addr = await resolveDatabaseAddresses({ url: pg.url, sessionUrl: config.databaseSessionUrl, log, timeoutMs: config.databaseConnectTimeoutMs });
  const database = createDatabase({ url: addr.url, pooled: addr.pooled, poolSize: config.databasePoolSize, applicationName: 'wombat-scheduler-engine', ...databaseDeadlines(config) });
  lifecycle.onStop('database pool', () => database.close());
  // The schedule-change LISTEN holds one connection of its own on the session address.
  const listenSql = addr.pooled ? createSql({ url: addr.sessionUrl, poolSize: 1, applicationName: 'wombat-scheduler-engine', ...databaseDeadlines(config) }) : database.sql;
  if (listenSql !== database.sql) lifecycle.onStop('session connection', () => listenSql.end({ timeout: 1 }));
  const boss = await startBoss({ url: addr.url, role: 'maintainer', log, connectTimeoutMs: config.databaseConnectTimeoutMs });
  lifecycle.onStop('pg-boss', () => boss.stop({ graceful: false, close: true }));
  const engine = createEngine({
    db: database.db,
    sql: database.sql,
    listenSql,
    boss,
    log,
    options: engineOptions(config, { host: ctx.host, pid: ctx.pid }),
    ...serviceStallExit('engine', ctx.fatal, { url: pg.url, connectTimeoutMs: config.databaseConnectTimeoutMs }),
    ...(ctx.reporter?.enabled
      ? {
          onRunsLost: (ids: string[]) =>
            void reportFailedRuns(database.db, ctx.reporter!, ids.map((runId) => ({ runId }))).catch((err) => log.warn({ err, runIds: ids }, 'could not report the lost runs')),
        }
      : {}),
  });
  lifecycle.onStop('engine', () => engine.stop());
  await engine.start();
  // Alerts run beside the engine on timers of their own: nothing they wait for delays a publication.
  if (config.alertsEnabled) {
    const alerting = createAlerting({ db: database.db, log, options: { ...config, watchedPaths: watchedPaths(config) } });
    lifecycle.onStop('alerts', () => alerting.stop());
    alerting.start();
  }
  return engine;
}
