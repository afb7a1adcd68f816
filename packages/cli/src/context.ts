import {
  AppError,
  ConfigError,
  createDatabase,
  createLogger,
  databaseFields,
  findEmbeddedPostgres,
  loadConfig,
  redactUrl,
  resolveDatabase,
  resolveFromRoot,
  SQLSTATE,
  sqlState,
  startBoss,
  timeZone,
  ValidationError,
  warnObsoleteSettings,
  type ConfigOf,
  type Database,
  type Logger,
  type PgBoss,
} from '@wombat/core/platform';
import type { CoreTables } from '@wombat/core/tables';
import type { Kysely } from 'kysely';

/**
 * Exit codes of every `wombat` command (documented in `wombat --help` and the README).
 * Scripts and health checks branch on these, so they never change meaning.
 */
export const EXIT = {
  ok: 0,
  /** The thing asked about is not well: a run failed or was cancelled, status is unhealthy, a change was refused. */
  failed: 1,
  /** The command line, the input or the configuration is wrong; the message says what to fix. */
  usage: 2,
  /** No schedule, run or dead letter with that id or name. */
  notFound: 3,
  /** PostgreSQL cannot be reached, or the database is not migrated. */
  database: 4,
  interrupted: 130,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0    success (status: healthy; --wait/--follow: the run completed)
  1    failure: the run failed or was cancelled, status is unhealthy, or the change was refused
  2    bad command line, input or configuration (the message says what to fix)
  3    not found: no schedule, run or dead letter with that id or name
  4    PostgreSQL unreachable or not migrated
  130  interrupted (Ctrl-C)
Errors are one line on stderr; with --json, stdout also gets {"error": {"code", "message", "exit_code"}}.`;

/** An error that ends the command with a given exit code and one line saying what to fix. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly code: string;

  constructor(exitCode: number, code: string, message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.code = code;
  }
}

export const usage = (message: string) => new CliError(EXIT.usage, 'invalid_input', message);
export const notFoundError = (message: string) => new CliError(EXIT.notFound, 'not_found', message);

/** Maps any failure to the exit code and message the user sees. */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ConfigError) return new CliError(EXIT.usage, 'invalid_config', err.problems.join('; '), { cause: err });
  if (err instanceof ValidationError) return new CliError(EXIT.usage, 'invalid_input', err.problems.join('; '), { cause: err });
  if (err instanceof AppError) {
    if (err.code === 'boss_not_installed') return new CliError(EXIT.database, err.code, err.message, { cause: err });
    if (err.code.endsWith('_not_found')) return new CliError(EXIT.notFound, err.code, err.message, { cause: err });
    if (err.code.startsWith('invalid_')) return new CliError(EXIT.usage, err.code, err.message, { cause: err });
    return new CliError(EXIT.failed, err.code, err.message, { cause: err });
  }
  const state = sqlState(err);
  if (state === SQLSTATE.undefinedTable || state === '3F000') {
    return new CliError(EXIT.database, 'not_migrated', `the database has no Wombat tables (${(err as Error).message}): run migrations first (npm run migrate)`, { cause: err });
  }
  if (state === SQLSTATE.invalidCatalogName) {
    return new CliError(EXIT.database, 'no_database', `${(err as Error).message}: create it or fix DATABASE_URL`, { cause: err });
  }
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH|CONNECT_TIMEOUT|28P01|28000|57P03)$/.test(code)) {
    return new CliError(EXIT.database, 'database_unreachable', `cannot reach PostgreSQL (${code}: ${(err as Error).message}); check DATABASE_URL and that the server runs`, { cause: err });
  }
  return new CliError(EXIT.failed, 'internal', (err as Error)?.message ?? String(err), { cause: err });
}

const NO_DATABASE =
  'DATABASE_URL is not set and no npm start runs in this checkout (its embedded PostgreSQL under EMBEDDED_PG_DIR): set DATABASE_URL to your PostgreSQL (installed: /etc/wombat/wombat.env), or start Wombat with npm start';

export const cliFields = {
  ...databaseFields,
  timezone: timeZone('TZ', 'time zone (IANA) of schedules created without one, as the api', { default: 'Asia/Seoul' }),
};

export interface CliOptions {
  json: boolean;
  verbose: boolean;
}

/** What a command gets: its output, a logger on stderr, and the database opened on first use. */
export interface CliContext {
  opts: CliOptions;
  env: NodeJS.ProcessEnv;
  log: Logger;
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when stdout is a terminal: tables and bars; otherwise plain lines. */
  isTty: boolean;
  /** True when stderr is a terminal: progress bars go there. */
  errIsTty: boolean;
  errStream: NodeJS.WritableStream;
  /** Aborts on Ctrl-C. */
  signal: AbortSignal;
  database(): Promise<{ db: Kysely<CoreTables>; sql: Database<CoreTables>['sql']; url: string }>;
  /** The CLI's configuration (database, TZ); throws ConfigError naming each bad variable. */
  config(): ConfigOf<typeof cliFields>;
  boss(): Promise<PgBoss>;
  close(): Promise<void>;
}

export interface CliIo {
  env: NodeJS.ProcessEnv;
  out: (text: string) => void;
  err: (text: string) => void;
  isTty: boolean;
  errIsTty: boolean;
  /** Where logs go (stderr). */
  errStream: NodeJS.WritableStream;
  signal: AbortSignal;
}

export function createContext(io: CliIo, opts: CliOptions): CliContext {
  // The command's own messages go to stdout; logs stay quiet on stderr unless asked for.
  const log = createLogger({ name: 'wombat', level: opts.verbose ? 'debug' : 'warn', format: 'auto', isTty: io.errIsTty, destination: io.errStream });
  let opened: Promise<{ database: Database<CoreTables>; url: string; stop: () => Promise<void> }> | undefined;
  let boss: Promise<PgBoss> | undefined;

  let config: ConfigOf<typeof cliFields> | undefined;
  const getConfig = () => {
    if (config) return config;
    config = loadConfig(cliFields, io.env);
    warnObsoleteSettings(io.env, log);
    return config;
  };

  async function open() {
    const config = getConfig();
    const embeddedDir = resolveFromRoot(config.embeddedPgDir);
    // Without DATABASE_URL: the database of the `npm start` running in this checkout, borrowed.
    const found = config.databaseUrl === undefined ? await findEmbeddedPostgres({ dir: embeddedDir, log }) : undefined;
    if (config.databaseUrl === undefined && !found) throw new ConfigError([NO_DATABASE]);
    const resolved = found
      ? { url: found.url, stop: async () => {} }
      : await resolveDatabase({ databaseUrl: config.databaseUrl, embeddedDir, embeddedPort: config.embeddedPgPort, log });
    const database = createDatabase<CoreTables>({ url: resolved.url, poolSize: 3, applicationName: 'wombat-cli', connectTimeoutSeconds: 5 });
    try {
      await database.sql`select 1`;
    } catch (err) {
      await database.close();
      await resolved.stop();
      const mapped = toCliError(err);
      if (mapped.exitCode === EXIT.database) throw mapped;
      throw new CliError(EXIT.database, 'database_unreachable', `cannot reach PostgreSQL at ${redactUrl(resolved.url)}: ${(err as Error).message}; check DATABASE_URL`, { cause: err });
    }
    return { database, url: resolved.url, stop: () => resolved.stop() };
  }

  return {
    opts,
    env: io.env,
    log,
    out: io.out,
    err: io.err,
    isTty: io.isTty,
    errIsTty: io.errIsTty,
    errStream: io.errStream,
    signal: io.signal,
    config: getConfig,
    async database() {
      opened ??= open();
      const o = await opened;
      return { db: o.database.db, sql: o.database.sql, url: o.url };
    },
    async boss() {
      boss ??= (async () => {
        const { url } = await this.database();
        return startBoss({ url, role: 'producer', log, poolSize: 1 });
      })();
      return boss;
    },
    async close() {
      if (boss) await (await boss.catch(() => undefined))?.stop({ graceful: false, close: true });
      if (opened) {
        const o = await opened.catch(() => undefined);
        if (o) {
          await o.database.close();
          await o.stop();
        }
      }
    },
  };
}

export interface CliRuntime extends CliIo {
  /** Starts the scheduler-engine in this process (main.ts hands over the process); resolves when it has stopped. */
  startEngine(): Promise<number>;
}

/** Wraps a command body: a context opened for it and closed after, its exit code recorded. */
export type Act = <A extends unknown[]>(fn: (ctx: CliContext, ...args: A) => Promise<number | void>) => (...args: unknown[]) => Promise<void>;
