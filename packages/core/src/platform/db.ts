import { Kysely } from 'kysely';
import postgres from 'postgres';
import { PostgresJsDialect } from './db-driver.ts';
import { backoffMs } from './backoff.ts';
import { withDeadline } from './deadline.ts';
import { DatabaseTimeoutError, sqlState, SQLSTATE } from './errors.ts';

export type Sql = postgres.Sql;

/** A query pool with its Kysely handle, typed by the tables the caller uses (the domains export theirs). */
export interface Database<Tables> {
  db: Kysely<Tables>;
  /** The postgres.js client under `db`: for LISTEN/NOTIFY and raw SQL files. */
  sql: Sql;
  close(): Promise<void>;
}

/**
 * Database deadlines, defined once: the configuration fields (DATABASE_*_MS) take
 * their defaults from here, and so does every pool created without them.
 */
export const DATABASE_DEADLINE_DEFAULTS = {
  /** Opening a connection; also how long a statement may wait for one. */
  connectTimeoutMs: 2_000,
  /** One statement, enforced by the server (statement_timeout) and, plus a grace, by the client. */
  statementTimeoutMs: 30_000,
  /** One transaction, from BEGIN to COMMIT; the server also ends a transaction idle this long. */
  transactionTimeoutMs: 60_000,
} as const;

/** How long the client waits beyond statement_timeout before abandoning a statement itself. */
const CLIENT_GRACE_MS = 2_000;
/** Longest pause between reconnection attempts: a returning server is used within about this long. */
const MAX_RECONNECT_DELAY_MS = 500;

export interface DatabaseOptions {
  url: string;
  poolSize?: number;
  applicationName?: string;
  connectTimeoutMs?: number;
  /** 0: no limit (migrations). */
  statementTimeoutMs?: number;
  /** 0: no limit (migrations). */
  transactionTimeoutMs?: number;
  /** @deprecated seconds; use connectTimeoutMs. */
  connectTimeoutSeconds?: number;
  /**
   * `url` is a transaction-mode pooler: no session settings at connection start (PgBouncer
   * refuses them) and no named prepared statements (a server connection is not kept).
   */
  pooled?: boolean;
}

function deadlinesOf(opts: DatabaseOptions) {
  const d = DATABASE_DEADLINE_DEFAULTS;
  return {
    connectTimeoutMs: opts.connectTimeoutMs ?? (opts.connectTimeoutSeconds !== undefined ? opts.connectTimeoutSeconds * 1000 : d.connectTimeoutMs),
    statementTimeoutMs: opts.statementTimeoutMs ?? d.statementTimeoutMs,
    transactionTimeoutMs: opts.transactionTimeoutMs ?? d.transactionTimeoutMs,
  };
}

export function createSql(opts: DatabaseOptions): Sql {
  const d = deadlinesOf(opts);
  return postgres(opts.url, {
    max: opts.poolSize ?? 10,
    connect_timeout: d.connectTimeoutMs / 1000,
    idle_timeout: 60,
    // TCP keepalive notices a peer that vanished without closing (host down, cable out).
    keep_alive: 10,
    // postgres.js's default backoff grows to 20 s between attempts, so a query made
    // during an outage could wait that long to fail and a returning server was
    // noticed late. Short and capped: fail fast, recover fast. It counts failed attempts from 0,
    // and wants seconds.
    backoff: (retries: number) => backoffMs(retries + 1, { baseMs: 50, maxMs: MAX_RECONNECT_DELAY_MS, jitter: 'none' }) / 1000,
    onnotice: () => {},
    prepare: !opts.pooled,
    connection: {
      application_name: opts.applicationName ?? 'wombat',
      // Server-side deadlines: they free the backend even when this process is gone. A
      // transaction pooler takes no startup settings: its query_timeout and
      // idle_transaction_timeout stand in, with the client's own deadlines.
      ...(opts.pooled
        ? {}
        : {
            statement_timeout: d.statementTimeoutMs,
            idle_in_transaction_session_timeout: d.transactionTimeoutMs,
          }),
    },
    // int8 as number: Wombat's bigint ids and counts stay far below 2^53.
    types: {
      int8: { to: 20, from: [20], serialize: (v: number) => String(v), parse: (v: string) => Number(v) },
    },
  });
}

export function createDatabase<Tables>(opts: DatabaseOptions): Database<Tables> {
  const sql = createSql(opts);
  const d = deadlinesOf(opts);
  const dialect = new PostgresJsDialect({
    sql,
    prepare: !opts.pooled,
    deadlines: {
      connectTimeoutMs: d.connectTimeoutMs,
      queryTimeoutMs: d.statementTimeoutMs > 0 ? d.statementTimeoutMs + CLIENT_GRACE_MS : 0,
      transactionTimeoutMs: d.transactionTimeoutMs,
    },
  });
  const db = new Kysely<Tables>({ dialect });
  let closing: Promise<void> | undefined;
  return {
    db,
    sql,
    close() {
      // kysely's destroy ends the postgres.js pool too.
      closing ??= db.destroy();
      return closing;
    },
  };
}

export interface DatabasePing {
  ok: boolean;
  latencyMs: number;
  /** When not ok: a stable code and a short reason, fit to show anyone (see `describeDatabaseFailure`). */
  code?: DatabaseFailureCode;
  reason?: string;
  /** The driver's error, for the journal only: it can name roles, hosts and ports. */
  err?: unknown;
}

/** True when Postgres answers a trivial query within `timeoutMs` (default: the connect timeout). */
export async function pingDatabase(sql: Sql, timeoutMs: number = DATABASE_DEADLINE_DEFAULTS.connectTimeoutMs): Promise<DatabasePing> {
  const started = performance.now();
  try {
    await withDeadline(sql`select 1`, timeoutMs, 'ping');
    return { ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, latencyMs: Math.round(performance.now() - started), ...describeDatabaseFailure(err), err };
  }
}

export type DatabaseFailureCode = 'timeout' | 'unreachable' | 'auth_failed' | 'no_database' | 'starting' | 'shutting_down' | 'too_many_connections' | 'error';

const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED']);

/**
 * A database failure as anyone may read it: the driver's own message names the
 * role ("role … is not permitted to log in", "password authentication failed for
 * user …"), the host and the port, which an open endpoint such as /health must not
 * show. Matched by SQLSTATE and errno code, never by message text.
 */
export function describeDatabaseFailure(err: unknown): { code: DatabaseFailureCode; reason: string } {
  if (err instanceof DatabaseTimeoutError) return { code: 'timeout', reason: `no answer within ${err.timeoutMs} ms` };
  const code = sqlState(err);
  switch (code) {
    case '28000':
    case '28P01':
      return { code: 'auth_failed', reason: 'the database refused our login' };
    case SQLSTATE.invalidCatalogName:
      return { code: 'no_database', reason: 'the database does not exist' };
    case SQLSTATE.cannotConnectNow:
      return { code: 'starting', reason: 'the database is starting or recovering' };
    case SQLSTATE.adminShutdown:
    case '57P02':
      return { code: 'shutting_down', reason: 'the database is shutting down' };
    case '53300':
      return { code: 'too_many_connections', reason: 'the database has no free connection' };
  }
  if (code && UNREACHABLE.has(code)) return { code: 'unreachable', reason: 'cannot connect to the database' };
  return { code: 'error', reason: code && /^[0-9A-Z]{5}$/.test(code) ? `the database answered with an error (SQLSTATE ${code})` : 'the database call failed' };
}

/**
 * True when a connection of its own, outside every pool, gets an answer to a trivial
 * query within `timeoutMs`: tells a database that is down from a pool that is stuck.
 */
export async function probeDatabase(url: string, timeoutMs: number = DATABASE_DEADLINE_DEFAULTS.connectTimeoutMs): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)), idle_timeout: 1, onnotice: () => {}, connection: { application_name: 'wombat-probe' } });
  try {
    await withDeadline(sql`select 1`, timeoutMs, 'probe');
    return true;
  } catch {
    return false;
  } finally {
    void sql.end({ timeout: 0 }).catch(() => {});
  }
}
