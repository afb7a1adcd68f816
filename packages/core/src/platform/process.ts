import { createServer } from 'node:net';
import { ConfigError } from './config.ts';
import { createLifecycle, flushAndExit, handleSignals, type Lifecycle } from './lifecycle.ts';
import { resolveFromRoot } from './common-config.ts';
import { DATABASE_URL_MISSING, resolveDatabase, type ResolvedDatabase } from './embedded-postgres.ts';
import { createNotifier } from './systemd-notify.ts';
import { createLogger, isJournalStream, redactUrl, type Logger } from './logger.ts';
import { probeDatabase } from './db.ts';
import { createErrorReporter, NO_ERROR_REPORTER, type ErrorReporter } from './error-reporting.ts';
import { warnObsoleteSettings } from './legacy-settings.ts';
import type { LoopSupervisorOptions } from './loops.ts';

export { isProcessAlive } from './embedded-postgres.ts';

/** A TCP port free on 127.0.0.1 at the moment of asking. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

type Proc = Pick<NodeJS.Process, 'env' | 'on' | 'exit' | 'stdout' | 'stderr'>;

/** Loads configuration, or prints every problem and exits 1. */
export function configOrExit<C>(load: (env: NodeJS.ProcessEnv) => C, proc: Proc): C {
  try {
    return load(proc.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    proc.stderr.write(`${err.message}\n`);
    return proc.exit(1);
  }
}

export interface ServiceConfig {
  logLevel: string;
  logFormat: 'auto' | 'json' | 'pretty';
  shutdownTimeoutMs: number;
  /** SENTRY_DSN and its tags (processFields); unset: no error reporting. */
  sentryDsn?: string | undefined;
  sentryEnvironment?: string;
  sentryRelease?: string;
}

/** How long a stopping service waits for its last error reports to be sent. */
const ERROR_REPORT_FLUSH_MS = 2_000;

/** Ends the process with a non-zero code after a clean stop: for errors nothing can recover from in-process. */
export type Fatal = (reason: string, err?: unknown) => void;

/**
 * A `Fatal` over a lifecycle: logs, reports (`report`, e.g. to Sentry: sent by the
 * lifecycle's stop), stops what can be stopped within the shutdown deadline (the
 * lifecycle enforces it), exits 1. Memoized: a second failure while stopping is
 * logged and changes nothing.
 */
export function createFatal(lifecycle: Lifecycle, proc: Pick<NodeJS.Process, 'exit'>, log: Logger, report?: (reason: string, err: unknown) => void): Fatal {
  let exiting = false;
  return (reason, err) => {
    if (exiting) {
      log.error({ err, reason }, 'another fatal error while stopping');
      return;
    }
    exiting = true;
    log.fatal({ err, reason }, `${reason}; stopping and exiting with status 1`);
    report?.(reason, err);
    void lifecycle
      .stop(reason)
      .catch(() => false)
      .then(() => flushAndExit(log, proc, 1));
  };
}

/**
 * How a service's loop supervisor stops it: `fatal` naming the loop, and the probe
 * (a connection of its own to `url`) that tells a stuck pool from a database that is down.
 */
export function serviceStallExit(
  service: string,
  fatal: Fatal | undefined,
  db: { url: string; connectTimeoutMs: number },
): Pick<LoopSupervisorOptions, 'onStall' | 'probe'> {
  return {
    onStall: ({ loop, failingMs }) => fatal?.(`${service} loop ${loop} made no progress for ${failingMs} ms`),
    probe: () => probeDatabase(db.url, db.connectTimeoutMs),
  };
}

/**
 * postgres.js (3.4.9) reads the server's array types on every new connection, from its handler of
 * the connection's first ReadyForQuery, and leaves that promise unhandled: when the connection
 * closes during the read (the database stopping or restarting just as a pool connects), the
 * rejection reaches nobody. The statements waiting on that connection fail as usual and the next
 * connection reads the types again, so nothing is lost. Recognized by the statement postgres.js
 * attaches to the error (its array-type read of pg_catalog.pg_type); anything else stays fatal.
 */
export function isDriverTypeReadOnClosedConnection(reason: unknown): boolean {
  if (!(reason instanceof Error)) return false;
  const query = (reason as { query?: unknown }).query;
  return typeof query === 'string' && query.includes('from pg_catalog.pg_type a') && query.includes('b.typarray');
}

/**
 * An exception or rejection nobody handled leaves the process in an unknown state:
 * log it with its origin, stop cleanly within the shutdown deadline, exit 1 so the
 * service manager restarts the process (Node's default would exit without stopping).
 * The one exception is postgres.js's array-type read on a connection that closed
 * (isDriverTypeReadOnClosedConnection): logged, and the process goes on.
 */
export function handleUncaught(proc: Pick<NodeJS.Process, 'on'>, fatal: Fatal, log?: Logger): void {
  proc.on('uncaughtException', (err: Error, origin: string) => fatal(origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception', err));
  proc.on('unhandledRejection', (reason: unknown) => {
    if (isDriverTypeReadOnClosedConnection(reason)) {
      log?.warn({ err: reason }, 'a new database connection closed while the driver read its array types; the next connection reads them again');
      return;
    }
    fatal('unhandled rejection', reason);
  });
}

/**
 * What every service's main.ts does: configuration (exit 1 on any problem), the
 * root logger, signal handling and ordered stop, uncaught errors (logged, reported
 * to SENTRY_DSN when set, clean stop, exit 1), then `start`; a start failure stops
 * what did start and exits 1. `fatal` is handed to the service for failures it
 * cannot recover from in-process (a loop that cannot make progress), `reporter` for
 * what it reports itself (runs that failed for good).
 */
export async function runService<C extends ServiceConfig>(opts: {
  name: string;
  proc: Proc;
  loadConfig: (env: NodeJS.ProcessEnv) => C;
  start: (config: C, deps: { log: Logger; lifecycle: Lifecycle; fatal: Fatal; reporter: ErrorReporter }) => Promise<unknown>;
}): Promise<void> {
  const { proc } = opts;
  const config = configOrExit(opts.loadConfig, proc);
  if ('databaseUrl' in config && config.databaseUrl === undefined) {
    // A service never falls back to a private database: DATABASE_URL=embedded asks for one.
    proc.stderr.write(`${new ConfigError([DATABASE_URL_MISSING]).message}\n`);
    return proc.exit(1);
  }
  const log = createLogger({
    name: opts.name,
    level: config.logLevel,
    format: config.logFormat,
    isTty: proc.stdout.isTTY === true,
    journal: isJournalStream(proc.env),
  });
  warnObsoleteSettings(proc.env, log);
  const lifecycle = createLifecycle({ log, shutdownTimeoutMs: config.shutdownTimeoutMs });
  handleSignals(lifecycle, proc, log);
  let reporter = NO_ERROR_REPORTER;
  const fatal = createFatal(lifecycle, proc, log, (reason, err) => reporter.uncaught(err, reason));
  handleUncaught(proc, fatal, log);
  const notifier = createNotifier({ env: proc.env, pid: process.pid, log });
  // Registered first, so it runs last: the watchdog keeps being fed while the service drains.
  lifecycle.onStop('systemd-notify', () => notifier.close());
  try {
    reporter = await createErrorReporter({
      dsn: config.sentryDsn,
      service: opts.name,
      environment: config.sentryEnvironment ?? 'production',
      release: config.sentryRelease ?? 'wombat',
      env: proc.env,
      log,
    });
    // Stopped after everything the service registers: the reports its stop produces are sent too.
    lifecycle.onStop('error reporting', async () => {
      if (!(await reporter.close(ERROR_REPORT_FLUSH_MS))) log.warn('error reports still unsent when the service stopped');
    });
    await opts.start(config, { log, lifecycle, fatal, reporter });
    await notifier.ready();
  } catch (err) {
    log.fatal({ err }, `${opts.name} failed to start`);
    reporter.uncaught(err, 'start failed');
    await lifecycle.stop('start failed');
    flushAndExit(log, proc, 1);
  }
}

/**
 * A service's PostgreSQL from its configuration (DATABASE_URL; `embedded` only
 * when asked for), stopped last by the lifecycle.
 */
export async function resolveServiceDatabase(
  config: { databaseUrl: string | undefined; embeddedPgDir: string; embeddedPgPort: number },
  deps: { log: Logger; lifecycle: Lifecycle },
): Promise<ResolvedDatabase> {
  const resolved = await resolveDatabase({
    databaseUrl: config.databaseUrl,
    embeddedDir: resolveFromRoot(config.embeddedPgDir),
    embeddedPort: config.embeddedPgPort,
    log: deps.log,
  });
  deps.lifecycle.onStop('postgres', () => resolved.stop());
  deps.log.info({ database: redactUrl(resolved.url) }, 'using PostgreSQL');
  return resolved;
}
