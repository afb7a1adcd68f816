import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { ConfigError } from './config.ts';
import { withDeadline } from './deadline.ts';
import { DATABASE_DEADLINE_DEFAULTS } from './db.ts';
import type { Logger } from './logger.ts';

/**
 * Where a process's connections go. `url` carries every query and transaction and may
 * be a transaction-mode pooler; `sessionUrl` carries what needs a server session of its
 * own for longer than a transaction: LISTEN, session advisory locks, and pg-boss's
 * LISTEN in workers.
 */
export interface DatabaseAddresses {
  url: string;
  sessionUrl: string;
  /** `url` shares server sessions between client connections (a transaction-mode pooler). */
  pooled: boolean;
}

/**
 * True when `url` hands its client connections whatever server session is free, as a
 * transaction-mode (or statement-mode) pooler does: a LISTEN made on one client
 * connection does not stick to it. Two client connections, one at a time: the first
 * LISTENs, then each asks its server session for the channels it listens on. Direct and
 * session-mode connections keep their session, so only the first sees the channel.
 * Undefined when the probe could not connect or answer in time.
 */
export async function sharesSessions(url: string, timeoutMs: number = DATABASE_DEADLINE_DEFAULTS.connectTimeoutMs): Promise<boolean | undefined> {
  // No startup settings and no prepared statements: a pooler accepts this connection as it is.
  // No idle timeout: the first connection must keep its session while the second one opens (on a
  // busy machine that took over a second, and a reopened first connection looked like a pooler's).
  const open = () => postgres(url, { max: 1, prepare: false, connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)), onnotice: () => {}, connection: { application_name: 'wombat-pooler-probe' } });
  const a = open();
  const b = open();
  const channel = `wombat_probe_${randomBytes(6).toString('hex')}`;
  const sees = async (sql: postgres.Sql) => {
    const [row] = await withDeadline(sql<{ listening: boolean }[]>`select exists(select 1 from pg_listening_channels() c where c = ${channel}) as listening`, timeoutMs, 'pooler probe');
    // Whichever server session holds the probe's LISTEN, it should not keep it (best effort).
    if (row?.listening) await withDeadline(sql.unsafe(`unlisten ${channel}`), timeoutMs, 'pooler probe');
    return row?.listening === true;
  };
  try {
    await withDeadline(a.unsafe(`listen ${channel}`), timeoutMs, 'pooler probe');
    const other = await sees(b);
    const own = other ? true : await sees(a);
    return other || !own;
  } catch {
    return undefined;
  } finally {
    void a.end({ timeout: 0 }).catch(() => {});
    void b.end({ timeout: 0 }).catch(() => {});
  }
}

export const SESSION_URL_MISSING =
  'DATABASE_URL is a transaction-mode pooler (a LISTEN did not stay on its connection): set DATABASE_SESSION_URL to a direct or session-mode address of the same database, for LISTEN and advisory locks';
export const SESSION_URL_POOLED = 'DATABASE_SESSION_URL is a transaction-mode pooler (a LISTEN did not stay on its connection): it must be a direct or session-mode address';

/**
 * The process's two addresses, checked at start: a transaction-mode pooler as
 * DATABASE_URL without a session address (or as the session address) is refused with
 * one line saying what is missing, rather than losing notifications and locks later. A
 * probe that cannot connect decides nothing: the pools then meet the outage as usual.
 */
export async function resolveDatabaseAddresses(
  opts: { url: string; sessionUrl?: string | undefined; log?: Logger; timeoutMs?: number },
): Promise<DatabaseAddresses> {
  const sessionUrl = opts.sessionUrl ?? opts.url;
  const separate = sessionUrl !== opts.url;
  const pooled = await sharesSessions(opts.url, opts.timeoutMs);
  if (pooled === true && !separate) throw new ConfigError([SESSION_URL_MISSING]);
  if (separate && (await sharesSessions(sessionUrl, opts.timeoutMs)) === true) throw new ConfigError([SESSION_URL_POOLED]);
  // With a separate session address, DATABASE_URL is treated as a pooler even when the
  // probe could not tell: pooler-safe settings work on a direct connection too.
  const result = { url: opts.url, sessionUrl, pooled: pooled === true || separate };
  opts.log?.info({ pooled: result.pooled, sessionAddress: separate }, result.pooled ? 'DATABASE_URL is a transaction pooler: LISTEN and advisory locks use DATABASE_SESSION_URL' : 'one database address');
  return result;
}
