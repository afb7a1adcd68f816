import { Kysely } from 'kysely';
import { PostgresJSDialect } from 'kysely-postgres-js';
import postgres from 'postgres';
import type { CoreTables } from './db-types.ts';

export type Sql = postgres.Sql;

export interface Database<Tables = CoreTables> {
  db: Kysely<Tables>;
  /** The postgres.js client under `db`: for LISTEN/NOTIFY and raw SQL files. */
  sql: Sql;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url: string;
  poolSize?: number;
  applicationName?: string;
  /** Seconds to wait for a connection before a query fails (Postgres down). */
  connectTimeoutSeconds?: number;
}

export function createSql(opts: DatabaseOptions): Sql {
  return postgres(opts.url, {
    max: opts.poolSize ?? 10,
    connect_timeout: opts.connectTimeoutSeconds ?? 10,
    idle_timeout: 60,
    onnotice: () => {},
    connection: { application_name: opts.applicationName ?? 'wombat' },
    // int8 as number: Wombat's bigint ids and counts stay far below 2^53.
    types: {
      int8: { to: 20, from: [20], serialize: (v: number) => String(v), parse: (v: string) => Number(v) },
    },
  });
}

export function createDatabase<Tables = CoreTables>(opts: DatabaseOptions): Database<Tables> {
  const sql = createSql(opts);
  const db = new Kysely<Tables>({ dialect: new PostgresJSDialect({ postgres: sql }) });
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

/** True when Postgres answers a trivial query within the pool's connect timeout. */
export async function pingDatabase(sql: Sql): Promise<{ ok: boolean; latencyMs: number; error?: string }> {
  const started = performance.now();
  try {
    await sql`select 1`;
    return { ok: true, latencyMs: Math.round(performance.now() - started) };
  } catch (err) {
    return { ok: false, latencyMs: Math.round(performance.now() - started), error: (err as Error).message };
  }
}
