import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type postgres from 'postgres';
import { DatabaseTimeoutError } from './errors.ts';

type Sql = postgres.Sql;
type TxSql = postgres.TransactionSql;
type PendingQuery = postgres.PendingQuery<postgres.Row[]> & { state?: unknown };

/**
 * Deadlines the driver enforces on the client side, on top of the server's
 * statement_timeout and idle_in_transaction_session_timeout (which need a live
 * connection to act).
 */
export interface DriverDeadlines {
  /** A statement not yet on a connection after this long fails as database_unavailable. */
  connectTimeoutMs: number;
  /** A statement sent but unanswered after this long is abandoned (0: no limit). */
  queryTimeoutMs: number;
  /** A transaction open longer than this refuses further statements and rolls back (0: no limit). */
  transactionTimeoutMs: number;
}

/**
 * Kysely over postgres.js without `sql.reserve()`.
 *
 * kysely-postgres-js takes a reserved connection for every query, and postgres.js
 * 3.4.9 (the newest release) has reserve hangs that no release fixes:
 * porsager/postgres#1195 (a reserve queued while its connection is terminated
 * server-side never settles, exactly what a PostgreSQL restart does) and #751.
 * A reserved or transaction connection that closed also crashes the process when
 * anything is sent on it (`Cannot read properties of null (reading 'write')` from
 * `nextWrite`, #1066/#1154, fix unreleased in PR #1168).
 *
 * So: single statements go through the pool (`sql.unsafe`), which fails them when
 * a connection cannot be had; transactions go through `sql.begin`, which rejects as
 * soon as its connection closes, and nothing is sent on a transaction after that
 * (the rollback is skipped: the server has already rolled it back). Every
 * statement has a client-side deadline, so no caller waits forever.
 */
export class PostgresJsDialect implements Dialect {
  readonly opts: { sql: Sql; deadlines: DriverDeadlines; prepare?: boolean };
  constructor(opts: { sql: Sql; deadlines: DriverDeadlines; prepare?: boolean }) {
    this.opts = opts;
  }
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PostgresJsDriver(this.opts.sql, this.opts.deadlines, this.opts.prepare ?? true);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }
}

/** Why a transaction can no longer take statements; `closed`: its connection is gone. */
interface TxState {
  tx?: TxSql;
  /** Resolves (commit) or rejects (rollback) the callback given to sql.begin. */
  finish?: { commit(): void; rollback(err: unknown): void };
  /** sql.begin's promise: settles after COMMIT/ROLLBACK, or at once when the connection closes. */
  done: Promise<unknown>;
  closed: boolean;
  closeError?: unknown;
  broken?: Error;
  /** The last statement failed: its connection may have just closed. */
  suspect?: boolean;
  timer?: NodeJS.Timeout;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

class PostgresJsConnection implements DatabaseConnection {
  txState: TxState | undefined;
  readonly sql: Sql;
  readonly d: DriverDeadlines;
  readonly prepare: boolean;
  constructor(sql: Sql, d: DriverDeadlines, prepare: boolean) {
    this.sql = sql;
    this.d = d;
    this.prepare = prepare;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const t = this.txState;
    if (t) {
      // A close that failed the previous statement settles `done` later in the same
      // turn: wait one, so nothing is ever sent on a connection postgres.js has closed.
      if (t.suspect) {
        await nextTurn();
        t.suspect = false;
      }
      if (t.closed) throw t.closeError;
      if (t.broken) throw t.broken;
    }
    const target = t?.tx ?? this.sql;
    const q = target.unsafe(compiled.sql, [...compiled.parameters] as never[], { prepare: this.prepare }) as unknown as PendingQuery;
    let result;
    try {
      result = await this.withDeadline(q, compiled.sql);
    } catch (err) {
      if (t) t.suspect = true;
      throw err;
    }
    const { command, count } = result as unknown as { command: string; count: number };
    return {
      numAffectedRows: command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE' ? BigInt(count) : undefined,
      rows: Array.from(result as unknown as R[]),
    };
  }

  /** Races a statement against its deadlines; a late answer is dropped. */
  private withDeadline(q: PendingQuery, text: string): Promise<postgres.RowList<postgres.Row[]>> {
    const { connectTimeoutMs, queryTimeoutMs } = this.d;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error) => {
        if (this.txState && !this.txState.broken) this.txState.broken = err;
        reject(err);
      };
      const check = () => {
        if (q.state == null) {
          // Never reached a connection: the pool could not connect (or is saturated).
          fail(new DatabaseTimeoutError('connect', connectTimeoutMs, text));
        } else if (queryTimeoutMs > 0) {
          timer = setTimeout(() => fail(new DatabaseTimeoutError('query', queryTimeoutMs, text)), queryTimeoutMs);
          timer.unref?.();
        }
      };
      timer = setTimeout(check, connectTimeoutMs);
      timer.unref?.();
      q.then(
        (rows) => {
          clearTimeout(timer);
          resolve(rows);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  async *streamQuery<R>(compiled: CompiledQuery, chunkSize: number): AsyncIterableIterator<QueryResult<R>> {
    if (this.txState?.closed) throw this.txState.closeError;
    const target = this.txState?.tx ?? this.sql;
    const cursor = target.unsafe(compiled.sql, [...compiled.parameters] as never[]).cursor(chunkSize);
    for await (const rows of cursor) yield { rows: rows as unknown as R[] };
  }
}

class PostgresJsDriver implements Driver {
  readonly sql: Sql;
  readonly d: DriverDeadlines;
  readonly prepare: boolean;
  constructor(sql: Sql, d: DriverDeadlines, prepare: boolean) {
    this.sql = sql;
    this.d = d;
    this.prepare = prepare;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new PostgresJsConnection(this.sql, this.d, this.prepare);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const c = connection as PostgresJsConnection;
    const mode = [settings.isolationLevel ? `isolation level ${settings.isolationLevel}` : '', settings.accessMode ?? ''].join(' ').trim();
    let abandoned = false;
    const state = { closed: false } as TxState;
    const ready = new Promise<void>((resolveReady, rejectReady) => {
      state.done = this.sql.begin(mode, (tx) => {
        return new Promise((commit, rollback) => {
          state.tx = tx;
          state.finish = { commit: () => commit(undefined), rollback };
          // The caller gave up waiting for BEGIN: roll back what it will never use.
          if (abandoned) rollback(new Error('transaction abandoned before it began'));
          resolveReady();
        });
      });
      state.done.catch((err: unknown) => {
        state.closed = true;
        state.closeError = err;
        rejectReady(err);
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abandoned = true;
        reject(new DatabaseTimeoutError('connect', this.d.connectTimeoutMs, 'begin'));
      }, this.d.connectTimeoutMs);
    });
    try {
      await Promise.race([ready, deadline]);
    } finally {
      clearTimeout(timer);
    }
    if (this.d.transactionTimeoutMs > 0) {
      state.timer = setTimeout(() => {
        state.broken ??= new DatabaseTimeoutError('transaction', this.d.transactionTimeoutMs, 'transaction');
      }, this.d.transactionTimeoutMs);
      state.timer.unref?.();
    }
    c.txState = state;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const state = await this.settledState(connection);
    if (state.broken) {
      await this.finish(connection, state, state.broken);
      throw state.broken;
    }
    await this.finish(connection, state);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const state = await this.settledState(connection);
    await this.finish(connection, state, new Error('rolled back'));
  }

  /** The transaction after one event-loop turn, so a close postgres.js has seen is known. */
  private async settledState(connection: DatabaseConnection): Promise<TxState> {
    const c = connection as PostgresJsConnection;
    if (!c.txState) throw new Error('no transaction on this connection');
    await nextTurn();
    return c.txState;
  }

  private async finish(connection: DatabaseConnection, state: TxState, rollbackWith?: unknown): Promise<void> {
    const c = connection as PostgresJsConnection;
    clearTimeout(state.timer);
    c.txState = undefined;
    if (state.closed) {
      // The server rolled it back when the connection went; nothing may be sent on it.
      if (rollbackWith === undefined) throw state.closeError;
      return;
    }
    if (rollbackWith === undefined) state.finish!.commit();
    else state.finish!.rollback(rollbackWith);
    let timer: NodeJS.Timeout | undefined;
    // COMMIT/ROLLBACK wait behind a statement still running (one abandoned at its
    // deadline): bounded, after which the connection is left to the server's
    // idle_in_transaction_session_timeout.
    const limit = Math.max(this.d.queryTimeoutMs, this.d.connectTimeoutMs);
    const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), limit)));
    try {
      const outcome = await Promise.race([
        state.done.then(
          () => 'ok' as const,
          (err: unknown) => ({ err }),
        ),
        deadline,
      ]);
      // A rollback's outcome does not matter: either way nothing was committed.
      if (rollbackWith !== undefined) return;
      if (outcome === 'timeout') throw new DatabaseTimeoutError('query', limit, 'commit');
      if (outcome !== 'ok') throw outcome.err;
    } finally {
      clearTimeout(timer);
    }
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdent(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdent(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdent(name)}`));
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const c = connection as PostgresJsConnection;
    // A transaction the caller never finished (kysely always does; belt and braces).
    if (c.txState) await this.rollbackTransaction(c).catch(() => {});
  }

  async destroy(): Promise<void> {
    // The pool closes last in a service's stop, after every writer has finished: a statement still
    // out now belongs to a round that hangs (a connection dropped by an outage), and waiting for it
    // would spend the rest of the stop deadline. One second, then the connections are closed.
    await this.sql.end({ timeout: 1 });
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
