/**
 * `npm start`: the whole of Wombat on one machine, for trying it and for
 * development. Resolves PostgreSQL (DATABASE_URL; unset or `embedded`: an embedded
 * server under .wombat/pg), applies migrations, then runs the scheduler-engine, a worker and
 * the api as separate processes with their log lines prefixed by service.
 *
 * Ctrl-C (or SIGTERM) stops the services first, each within its own shutdown
 * deadline, then the embedded PostgreSQL; nothing is left running. A service that
 * crashes is restarted with backoff, as systemd would; one that fails at once with
 * status 1 (bad configuration) stops everything, and so does the embedded PostgreSQL
 * stopping under it. The embedded server is stopped only by the process that started
 * it: a launcher that found one running borrows it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  backoffMs,
  configOrExit,
  createDatabase,
  createLogger,
  databaseFields,
  EMBEDDED_DATABASE,
  int,
  loadConfig,
  POSTGRES_VARIABLES,
  processFields,
  redactUrl,
  repoRoot,
  resolveDatabase,
  resolveFromRoot,
  str,
} from '@wombat/core/platform';
import { listWorkers } from '@wombat/core/workers';
import { listEngines } from '@wombat/core/schedules';
import { migrationFields } from '@wombat/core/jobs';
import { migrateAll } from '@wombat/core/setup';

const SERVICES = ['scheduler-engine', 'worker', 'api'] as const;
type Service = (typeof SERVICES)[number];
const COLORS: Record<Service, string> = { 'scheduler-engine': '\x1b[35m', worker: '\x1b[36m', api: '\x1b[32m' };

const schema = {
  ...databaseFields,
  ...processFields,
  jobTimeouts: migrationFields.jobTimeouts,
  apiHost: str('API_HOST', 'address the api listens on', { default: '127.0.0.1' }),
  apiPort: int('API_PORT', 'port the api listens on', { default: 8000, min: 1, max: 65535 }),
};

// The launcher is local tooling: without DATABASE_URL (or the old POSTGRES_*) it asks for the embedded PostgreSQL.
const config = configOrExit((env) => {
  const c = loadConfig(schema, env);
  return { ...c, databaseUrl: c.databaseUrl ?? EMBEDDED_DATABASE };
}, process);

const tty = process.stdout.isTTY === true;
const log = createLogger({ name: 'wombat', level: config.logLevel, format: config.logFormat, isTty: tty });

const database = await resolveDatabase({
  databaseUrl: config.databaseUrl,
  embeddedDir: resolveFromRoot(config.embeddedPgDir),
  embeddedPort: config.embeddedPgPort,
  log,
}).catch((err: unknown) => {
  log.fatal({ err }, 'could not start PostgreSQL');
  log.flush();
  process.exit(1);
});

try {
  await migrateAll({ url: database.url, log, jobTimeouts: config.jobTimeouts });
} catch (err) {
  log.fatal({ err }, 'migration failed');
  await database.stop();
  log.flush();
  process.exit(1);
}

// The launcher's own look at the registries, to tell when the services are up.
const readiness = createDatabase({ url: database.url, poolSize: 1, applicationName: 'wombat-launcher' });

const children = new Map<Service, ChildProcess>();
let stopping = false;
let exitCode = 0;
const childEnv = {
  // The URL resolved here replaces the old POSTGRES_* (which would only earn each child a warning).
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !(POSTGRES_VARIABLES as readonly string[]).includes(k))),
  // One worker serves every queue here, which the production default (a warning at one
  // live worker per queue, meaning no spare) would report as soon as Wombat starts.
  ...(process.env.ALERT_WORKERS_WARNING === undefined && process.env.ALERT_WORKERS_CRITICAL === undefined ? { ALERT_WORKERS_WARNING: '0' } : {}),
  DATABASE_URL: database.url,
  // Child output is piped through this process, so they cannot see the terminal themselves.
  LOG_FORMAT: process.env.LOG_FORMAT || (tty ? 'pretty' : 'json'),
  ...(tty ? { FORCE_COLOR: '1' } : {}),
};

function prefixLines(stream: NodeJS.ReadableStream, out: NodeJS.WritableStream, service: Service): void {
  const label = tty ? `${COLORS[service]}${service.padEnd(16)}\x1b[0m| ` : `[${service}] `;
  readline.createInterface({ input: stream }).on('line', (line) => out.write(`${label}${line}\n`));
}

/**
 * Services seen ready (the api answering /health, the engine and the worker registered
 * under their own pids): one that exits 1 before that failed its configuration or
 * start-up checks, however long a loaded machine took to get there.
 */
const everReady = new Set<Service>();

function start(service: Service, attempt = 0): void {
  const startedAt = Date.now();
  // The engine's node flags, as in its package.json start script (a small young generation).
  const flags = service === 'scheduler-engine' ? ['--max-semi-space-size=4'] : [];
  const child = spawn(process.execPath, [...flags, 'src/main.ts'], {
    cwd: path.join(repoRoot, 'services', service),
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.set(service, child);
  prefixLines(child.stdout!, process.stdout, service);
  prefixLines(child.stderr!, process.stderr, service);
  child.on('exit', (code, signal) => {
    children.delete(service);
    if (stopping) {
      // Ctrl-C reaches the whole process group: a service still loading its modules has no
      // handler yet and ends by the signal itself, which is as clean as a drained stop.
      const endedBySignal = code === null && (signal === 'SIGINT' || signal === 'SIGTERM' || signal === 'SIGHUP');
      if (code !== 0 && !endedBySignal) exitCode = 1;
      log.info({ child: service, code, signal }, 'service stopped');
      return;
    }
    if (code === 1 && !everReady.has(service)) {
      log.error({ child: service, code }, 'service failed to start; stopping Wombat (see its messages above)');
      exitCode = 1;
      void stopAll('a service failed to start');
      return;
    }
    const delayMs = backoffMs(attempt + 1, { baseMs: 1_000, maxMs: 30_000, jitter: 'none' });
    log.error({ child: service, code, signal, restartInMs: delayMs }, 'service exited; restarting');
    setTimeout(() => {
      if (!stopping) start(service, Date.now() - startedAt > 60_000 ? 0 : attempt + 1);
    }, delayMs);
  });
}

async function stopAll(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ reason }, 'stopping Wombat');
  for (const child of children.values()) child.kill('SIGTERM');
  // Each service enforces its own deadline; this one only guards against a hung process.
  const deadline = Date.now() + config.shutdownTimeoutMs + 5000;
  while (children.size > 0 && Date.now() < deadline) await sleep(50);
  for (const [service, child] of children) {
    log.error({ child: service }, 'service did not stop in time; killing it');
    child.kill('SIGKILL');
    exitCode = 1;
  }
  while (children.size > 0) await sleep(50);
  await readiness.close();
  await database.stop();
  log.info({ exitCode }, 'Wombat stopped');
  log.flush();
  process.exit(exitCode);
}

let firstSignalAt = 0;
// SIGHUP too: a closed terminal must not orphan the services or the database.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // The terminal delivers Ctrl-C to the services too; a repeat a second later forces.
    if (stopping && Date.now() - firstSignalAt > 1000) {
      for (const child of children.values()) child.kill('SIGKILL');
      return;
    }
    firstSignalAt ||= Date.now();
    void stopAll(signal);
  });
}

for (const service of SERVICES) start(service);

// The embedded server is this launcher's own, or borrowed from another process in this
// checkout; should it stop all the same (killed, or its owner stopped it), the services
// would only retry against nothing: stop them cleanly and say why.
const embedded = database.embedded;
if (embedded) {
  const watch = setInterval(() => {
    if (stopping || embedded.running()) return;
    clearInterval(watch);
    log.error({ pid: embedded.pid, dir: embedded.dir }, 'the embedded PostgreSQL stopped under Wombat; stopping the services (run npm start again)');
    exitCode = 1;
    void stopAll('the embedded PostgreSQL stopped');
  }, 500);
  watch.unref();
}

const healthUrl = `http://${config.apiHost.includes(':') ? `[${config.apiHost}]` : config.apiHost}:${config.apiPort}/health`;

async function isReady(service: Service, db: typeof readiness.db): Promise<boolean> {
  const pid = children.get(service)?.pid;
  if (pid === undefined) return false;
  if (service === 'api') return fetch(healthUrl).then((res) => res.ok, () => false);
  const rows = service === 'worker' ? await listWorkers(db) : await listEngines(db);
  return rows.some((r) => r.pid === pid && r.alive);
}

// "Running" only once every service is: a worker that fails its configuration a few
// seconds after the api answers must not follow the announcement.
while (!stopping && everReady.size < SERVICES.length) {
  for (const service of SERVICES) {
    if (!everReady.has(service) && (await isReady(service, readiness.db).catch(() => false))) everReady.add(service);
  }
  if (everReady.size === SERVICES.length && !stopping) {
    log.info(
      { api: `http://${config.apiHost}:${config.apiPort}`, openapi: `${healthUrl.replace('/health', '/openapi.json')}`, database: redactUrl(database.url) },
      'Wombat is running; Ctrl-C stops it',
    );
    break;
  }
  await sleep(250);
}
