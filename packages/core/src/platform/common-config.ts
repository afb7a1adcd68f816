import path from 'node:path';
import { int, oneOf, parsePostgresUrl, postgresUrl, str, type Field } from './config.ts';
import { DATABASE_DEADLINE_DEFAULTS } from './db.ts';
import { errorReportingFields } from './error-reporting.ts';
import { databaseUrlFromPostgresVariables } from './legacy-settings.ts';
import { repoRoot } from './paths.ts';

/** The checkout Wombat runs from; relative paths in configuration resolve against it. */
export { repoRoot };

/**
 * DATABASE_URL: a postgres:// URL, or `embedded` (a private PostgreSQL under
 * EMBEDDED_PG_DIR, for local use); unset, built from the old setup's POSTGRES_* when
 * they are set (legacy-settings.ts). Unset parses as undefined so that tools that
 * may not need a database load their configuration; whatever connects refuses it
 * (resolveDatabase) with one line saying to set it.
 */
function databaseUrlField(): Field<string | undefined> {
  return {
    env: 'DATABASE_URL',
    doc: 'PostgreSQL URL (required); embedded: a private PostgreSQL under EMBEDDED_PG_DIR, for local use only',
    secret: true,
    // The old setup's POSTGRES_* stand in for an unset DATABASE_URL.
    read: (env) => (env.DATABASE_URL?.trim() ? env.DATABASE_URL : databaseUrlFromPostgresVariables(env)),
    parse(raw) {
      const v = raw?.trim();
      if (!v) return undefined;
      return v === 'embedded' ? v : parsePostgresUrl(v);
    },
  };
}

export const databaseFields = {
  databaseUrl: databaseUrlField(),
  databaseSessionUrl: postgresUrl(
    'DATABASE_SESSION_URL',
    'PostgreSQL URL for what needs a session of its own (LISTEN, session advisory locks, pg-boss\'s LISTEN in workers): a direct or session-mode address, needed when DATABASE_URL is a transaction-mode pooler; unset: DATABASE_URL',
  ),
  databasePoolSize: int('DATABASE_POOL_SIZE', 'connections in this process\'s query pool', { default: 10, min: 1, max: 200 }),
  embeddedPgDir: str('EMBEDDED_PG_DIR', 'data directory of the embedded PostgreSQL (relative to the checkout)', { default: '.wombat/pg' }),
  embeddedPgPort: int('EMBEDDED_PG_PORT', 'port of the embedded PostgreSQL (127.0.0.1 only)', { default: 54329, min: 1024, max: 65535 }),
  // Deadlines of every database call (issue: no request waits forever); see DATABASE_DEADLINE_DEFAULTS.
  databaseConnectTimeoutMs: int('DATABASE_CONNECT_TIMEOUT_MS', 'opening a database connection, and waiting for one from the pool, fails after this many ms', {
    default: DATABASE_DEADLINE_DEFAULTS.connectTimeoutMs,
    min: 100,
    max: 600_000,
  }),
  databaseStatementTimeoutMs: int('DATABASE_STATEMENT_TIMEOUT_MS', 'a statement running longer is cancelled by the server (statement_timeout), in ms; 0: no limit', {
    default: DATABASE_DEADLINE_DEFAULTS.statementTimeoutMs,
    min: 0,
    max: 86_400_000,
  }),
  databaseTransactionTimeoutMs: int('DATABASE_TRANSACTION_TIMEOUT_MS', 'a transaction open longer, or idle in a transaction that long, is rolled back, in ms; 0: no limit', {
    default: DATABASE_DEADLINE_DEFAULTS.transactionTimeoutMs,
    min: 0,
    max: 86_400_000,
  }),
};

/** createDatabase's deadline options from a service's configuration. */
export function databaseDeadlines(config: { databaseConnectTimeoutMs: number; databaseStatementTimeoutMs: number; databaseTransactionTimeoutMs: number }) {
  return {
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    statementTimeoutMs: config.databaseStatementTimeoutMs,
    transactionTimeoutMs: config.databaseTransactionTimeoutMs,
  };
}

export const processFields = {
  logLevel: oneOf('LOG_LEVEL', 'fatal, error, warn, info, debug or trace', ['fatal', 'error', 'warn', 'info', 'debug', 'trace'], {
    default: 'info',
  }),
  logFormat: oneOf('LOG_FORMAT', 'json (journald), pretty (terminal) or auto (pretty only on a terminal)', ['auto', 'json', 'pretty'], {
    default: 'auto',
  }),
  shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 'deadline for a clean stop after SIGTERM; systemd TimeoutStopSec must exceed it', {
    default: 25000,
    min: 1000,
    max: 600000,
  }),
  loopStallExitMs: int('LOOP_STALL_EXIT_MS', 'a periodic loop (engine heartbeat, publish pass, worker heartbeat, api pool check) that completes no round for this long, its rounds hanging, failing other than from an unreachable database, or failing so while the database answers a new connection (a stuck pool), exits the process with status 1; 0: never', {
    default: 120_000,
    min: 0,
    max: 86_400_000,
  }),
  ...errorReportingFields,
};

export function resolveFromRoot(p: string): string {
  return path.isAbsolute(p) ? p : path.join(repoRoot, p);
}
