import type { Logger } from './logger.ts';

/**
 * Settings of the setup Wombat replaces (the FastAPI/APScheduler/RQ scheduler engine and its
 * `.env`). Its PostgreSQL address still works: without DATABASE_URL, Wombat builds the URL from
 * POSTGRES_*. Settings that mean nothing any more are not errors, so an old `.env` can be kept
 * as it is: each gets one warning saying what replaced it.
 */
export const POSTGRES_VARIABLES = ['POSTGRES_SERVER', 'POSTGRES_PORT', 'POSTGRES_DB', 'POSTGRES_USER', 'POSTGRES_PASSWORD'] as const;
const POSTGRES_REQUIRED = ['POSTGRES_SERVER', 'POSTGRES_DB', 'POSTGRES_USER'] as const;

type Env = Record<string, string | undefined>;

const value = (env: Env, name: string): string | undefined => {
  const v = env[name]?.trim();
  return v ? v : undefined;
};

/**
 * DATABASE_URL from the old POSTGRES_SERVER, POSTGRES_PORT (default 5432), POSTGRES_DB,
 * POSTGRES_USER and POSTGRES_PASSWORD (optional), each part URL-encoded; undefined when none of
 * them is set. Throws when only some are, naming what is missing. Neither the password nor the
 * URL ever goes into an error message.
 */
export function databaseUrlFromPostgresVariables(env: Env): string | undefined {
  const set = POSTGRES_VARIABLES.filter((name) => value(env, name) !== undefined);
  if (set.length === 0) return undefined;
  const missing = POSTGRES_REQUIRED.filter((name) => value(env, name) === undefined);
  if (missing.length > 0) {
    throw new Error(
      `is not set, and the old settings ${set.join(', ')} are set without ${missing.join(', ')}: set DATABASE_URL, or ${POSTGRES_REQUIRED.join(', ')} (POSTGRES_PORT and POSTGRES_PASSWORD optional)`,
    );
  }
  const port = value(env, 'POSTGRES_PORT') ?? '5432';
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new Error(`is not set, and POSTGRES_PORT=${JSON.stringify(port)} is not a port (1 to 65535)`);
  const server = value(env, 'POSTGRES_SERVER')!;
  // An IPv6 address goes in brackets; a name or an IPv4 address as it is.
  const host = server.includes(':') && !server.startsWith('[') ? `[${server}]` : server;
  // The password is taken as written (spaces included): only an unset or empty one means none.
  const password = env.POSTGRES_PASSWORD;
  const auth = encodeURIComponent(value(env, 'POSTGRES_USER')!) + (password ? `:${encodeURIComponent(password)}` : '');
  return `postgres://${auth}@${host}:${port}/${encodeURIComponent(value(env, 'POSTGRES_DB')!)}`;
}

/** What replaced each obsolete setting, matched by name or by prefix (`RQ_*`). */
const OBSOLETE: { match: (name: string) => boolean; replacedBy: string }[] = [
  { match: (n) => n.startsWith('REDIS_'), replacedBy: 'the queue lives in PostgreSQL (DATABASE_URL)' },
  { match: (n) => n.startsWith('RQ_'), replacedBy: 'jobs are pg-boss jobs in PostgreSQL, run by Wombat\'s workers (WORKER_QUEUES, WORKER_CONCURRENCY, JOB_TIMEOUT_SECONDS)' },
  { match: (n) => ['LOG_FILE', 'LOG_DIR', 'LOG_PATH', 'LOG_FILE_PATH', 'LOG_FILENAME'].includes(n), replacedBy: 'services log to stdout; read them with journalctl' },
];

export interface ObsoleteSetting {
  variable: string;
  message: string;
}

/** One entry per obsolete setting set in `env`, by name, with what replaced it. */
export function obsoleteSettings(env: Env): ObsoleteSetting[] {
  const out: ObsoleteSetting[] = [];
  for (const name of Object.keys(env).sort()) {
    if (value(env, name) === undefined) continue;
    const hit = OBSOLETE.find((o) => o.match(name));
    if (hit) out.push({ variable: name, message: `${name} is no longer used: ${hit.replacedBy}` });
  }
  const postgres = POSTGRES_VARIABLES.filter((name) => value(env, name) !== undefined);
  if (postgres.length > 0 && value(env, 'DATABASE_URL') !== undefined) {
    out.push({ variable: postgres.join(','), message: `${postgres.join(', ')} ignored: DATABASE_URL is set and wins` });
  }
  return out;
}

/** Logs one warning line per obsolete setting (never a value: they may hold secrets). */
export function warnObsoleteSettings(env: Env, log: Pick<Logger, 'warn'>): void {
  for (const s of obsoleteSettings(env)) log.warn({ variable: s.variable }, s.message);
}
