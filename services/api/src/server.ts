import { createDatabase, createLoopSupervisor, databaseDeadlines, type ErrorReporter, type Fatal, type Logger, resolveDatabaseAddresses, resolveFromRoot, serviceStallExit, startBoss } from '@wombat/core/platform';
import { thresholdsFromAlertSettings, watchedPaths } from '@wombat/core/alerts';
import { buildApp } from './app.ts';
import type { App } from './deps.ts';
import { resolveAdminToken } from './admin-token.ts';
import type { ApiConfig } from './config.ts';

export interface RunningApi {
  app: App;
  /** Where it listens, e.g. http://127.0.0.1:8000 */
  url: string;
  /** Stops intake (closing the server drains in-flight requests), then the pg-boss and query pools. */
  stop(): Promise<void>;
}

/**
 * Starts the api against a migrated database; `embedded` tells whether it is the local embedded one.
 * `fatal` stops the service when its pools cannot make progress for LOOP_STALL_EXIT_MS.
 */
export async function startApi(opts: {
  config: ApiConfig;
  databaseUrl: string;
  embedded: boolean;
  log: Logger;
  fatal?: Fatal;
  reporter?: ErrorReporter;
}): Promise<RunningApi> {
  const { config, log } = opts;
  // The api needs no session of its own, but refuses a transaction pooler without a session
  // address as the other services do: one configuration serves every process.
  const addr = await resolveDatabaseAddresses({ url: opts.databaseUrl, sessionUrl: config.databaseSessionUrl, log, timeoutMs: config.databaseConnectTimeoutMs });
  const database = createDatabase({ url: addr.url, pooled: addr.pooled, poolSize: config.databasePoolSize, applicationName: 'wombat-api', ...databaseDeadlines(config) });
  let boss;
  try {
    boss = await startBoss({ url: opts.databaseUrl, role: 'producer', log, poolSize: 4, connectTimeoutMs: config.databaseConnectTimeoutMs });
  } catch (err) {
    await database.close();
    throw err;
  }
  const adminToken = await resolveAdminToken({ configured: config.adminToken, embedded: opts.embedded, file: resolveFromRoot(config.adminTokenFile), log });
  if (config.trustedNetworks) {
    log.warn(
      { trustedNetworks: config.trustedNetworks.cidrs, trustedProxies: config.trustedProxies?.cidrs ?? [] },
      'API_TRUSTED_NETWORKS is set: requests without a token from these networks are accepted as admin (each is logged with its address)',
    );
  }
  const app = await buildApp({
    db: database.db,
    sql: database.sql,
    boss,
    log,
    auth: { adminToken, readToken: config.readToken, reads: config.authReads, trustedNetworks: config.trustedNetworks, trustedProxies: config.trustedProxies },
    taskResultTtlDays: config.taskResultTtlDays,
    bodyLimitBytes: config.bodyLimitBytes,
    defaultTimezone: config.timezone,
    submitTimeoutMs: config.submitTimeoutMs,
    healthPingTimeoutMs: config.databaseConnectTimeoutMs,
    alertChannels: config,
    alertStaleFactor: config.alertStaleFactor,
    thresholds: thresholdsFromAlertSettings(config),
    watchedPaths: watchedPaths(config),
    ...(opts.reporter ? { reporter: opts.reporter } : {}),
  });
  // A trivial statement through each pool, under the loop supervisor: pools that hang, or fail as
  // if the database were down while it answers a connection of its own, stop the process.
  const supervisor = createLoopSupervisor({
    log,
    stallMs: config.loopStallExitMs,
    ...serviceStallExit('api', opts.fatal, { url: opts.databaseUrl, connectTimeoutMs: config.databaseConnectTimeoutMs }),
  });
  const checkEveryMs = Math.min(5_000, Math.max(100, Math.floor(config.loopStallExitMs / 4) || 5_000));
  supervisor.every(
    'pools',
    checkEveryMs,
    async () => {
      await database.sql`select 1`;
      await boss.getDb().executeSql('select 1');
    },
    { roundTimeoutMs: Math.max(2 * checkEveryMs, 5_000) },
  );
  const url = await app.listen({ host: config.host, port: config.port });
  log.info({ url, reads: config.authReads, openapi: `${url}/openapi.json` }, 'api listening');
  let stopping: Promise<void> | undefined;
  return {
    app,
    url,
    stop() {
      stopping ??= (async () => {
        supervisor.stop();
        // close() drains requests in flight, but a keep-alive connection that turns idle
        // after it began would be held until keepAliveTimeout (past the stop deadline):
        // sweep idle connections until the server is closed.
        const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
        try {
          await app.close();
        } finally {
          clearInterval(sweep);
        }
        await boss.stop({ graceful: false, close: true });
        await database.close();
      })();
      return stopping;
    },
  };
}
