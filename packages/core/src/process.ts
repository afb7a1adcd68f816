import { createServer } from 'node:net';
import { ConfigError } from './config.ts';
import { createLifecycle, handleSignals, type Lifecycle } from './lifecycle.ts';
import { resolveFromRoot } from './common-config.ts';
import { DATABASE_URL_MISSING, resolveDatabase, type ResolvedDatabase } from './embedded-postgres.ts';
import { createNotifier } from './systemd-notify.ts';
import { createLogger, isJournalStream, redactUrl, type Logger } from './logger.ts';

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
}

/**
 * What every service's main.ts does: configuration (exit 1 on any problem), the
 * root logger, signal handling and ordered stop, then `start`; a start failure
 * stops what did start and exits 1.
 */
export async function runService<C extends ServiceConfig>(opts: {
  name: string;
  proc: Proc;
  loadConfig: (env: NodeJS.ProcessEnv) => C;
  start: (config: C, deps: { log: Logger; lifecycle: Lifecycle }) => Promise<unknown>;
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
  const lifecycle = createLifecycle({ log, shutdownTimeoutMs: config.shutdownTimeoutMs });
  handleSignals(lifecycle, proc, log);
  const notifier = createNotifier({ env: proc.env, pid: process.pid, log });
  // Registered first, so it runs last: the watchdog keeps being fed while the service drains.
  lifecycle.onStop('systemd-notify', () => notifier.close());
  try {
    await opts.start(config, { log, lifecycle });
    await notifier.ready();
  } catch (err) {
    log.fatal({ err }, `${opts.name} failed to start`);
    await lifecycle.stop('start failed');
    log.flush();
    proc.exit(1);
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
