import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { sql, type Kysely, type Transaction } from 'kysely';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import { resolveFromRoot } from '../platform/common-config.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;

/**
 * What can take the whole system down from below: the database filling its disk
 * or its connections, a transaction held open for hours (vacuum cannot clean
 * behind it, so the queue's tables bloat), dead rows piling up in the two tables
 * every job touches, and the file systems of the candle files and the backups.
 * Read from PostgreSQL's own statistics and statfs(2): the cost is the same with
 * ten runs or ten million.
 */
export interface DatabaseHealth {
  size_bytes: number;
  /** Size change per day over the last week of samples (wombat.database_size_samples); null until a day of samples exists. */
  growth_bytes_per_day: number | null;
  connections: { used: number; max: number; ratio: number };
  /** Age of the oldest open transaction of another session, in seconds; null when none is open (or none is visible to this role). */
  oldest_transaction_s: number | null;
  /** Wombat's and pg-boss's largest tables (partitions counted with their table), indexes and TOAST included. */
  largest_tables: { table: string; bytes: number }[];
  /** The tables every run writes: live and dead rows and the last vacuum, partitions summed. */
  hot_tables: { table: string; live_rows: number; dead_rows: number; dead_ratio: number; last_vacuum: string | null }[];
  /** Each watched directory's file system; a path that does not exist yet is measured at its nearest existing parent. */
  filesystems: { role: string; path: string; size_bytes: number; free_bytes: number; used_ratio: number }[];
}

export interface WatchedPath {
  /** What the directory holds: data_root, backup_dir, database. */
  role: string;
  path: string;
}

/** The watched directories of a configuration (watchedPathFields), relative ones from the checkout as the collectors read them. */
export function watchedPaths(c: { watchDataRoot: string; watchBackupDir: string | undefined }): WatchedPath[] {
  return [{ role: 'data_root', path: resolveFromRoot(c.watchDataRoot) }, ...(c.watchBackupDir ? [{ role: 'backup_dir', path: resolveFromRoot(c.watchBackupDir) }] : [])];
}

/** The tables whose bloat slows every job. */
export const HOT_TABLES = ['wombat.runs', `${BOSS_SCHEMA}.job`] as const;

const LARGEST_SHOWN = 10;

async function nearestExisting(p: string): Promise<{ path: string; size: number; free: number } | null> {
  let dir = path.resolve(p);
  for (;;) {
    try {
      const s = await statfs(dir);
      return { path: dir, size: s.blocks * s.bsize, free: s.bavail * s.bsize };
    } catch {
      const up = path.dirname(dir);
      if (up === dir) return null;
      dir = up;
    }
  }
}

/** Free space of each watched directory; the database's own data directory is added when this role may read it and it is on this host. */
export async function readFilesystems(paths: WatchedPath[], dataDirectory: string | null): Promise<DatabaseHealth['filesystems']> {
  const all = [...paths, ...(dataDirectory ? [{ role: 'database', path: dataDirectory }] : [])];
  const out: DatabaseHealth['filesystems'] = [];
  for (const w of all) {
    // The database's directory is reported only where it is on this host (a remote server's path means nothing here).
    if (w.role === 'database') {
      const s = await statfs(w.path).catch(() => null);
      if (!s) continue;
    }
    const fs = await nearestExisting(w.path);
    if (!fs || fs.size === 0) continue;
    out.push({ role: w.role, path: w.path, size_bytes: fs.size, free_bytes: fs.free, used_ratio: Math.round((1 - fs.free / fs.size) * 10_000) / 10_000 });
  }
  return out;
}

/**
 * `sizes: false` (the alert evaluator, every few seconds) leaves out what walks the data
 * directory's files, pg_database_size and the largest tables: size_bytes is 0 and
 * largest_tables empty then.
 */
export async function readDatabaseHealth(db: Db, paths: WatchedPath[] = [], opts: { sizes?: boolean } = {}): Promise<DatabaseHealth> {
  const sizes = opts.sizes !== false;
  const [main] = (
    await sql<{ size: string; used: number; max: number; oldest: number | null; data_directory: string | null; growth: number | null }>`
      select ${sizes ? sql`pg_database_size(current_database())::text` : sql`'0'`} as size,
             (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as used,
             current_setting('max_connections')::int as max,
             (select extract(epoch from now() - min(xact_start))::float8 from pg_stat_activity
               where xact_start is not null and pid <> pg_backend_pid() and backend_type = 'client backend') as oldest,
             (select setting from pg_settings where name = 'data_directory') as data_directory,
             (select case when to_regclass('wombat.database_size_samples') is not null then
                (select case when extract(epoch from max(sampled_at) - min(sampled_at)) >= 72000 then
                   ((array_agg(bytes order by sampled_at desc))[1] - (array_agg(bytes order by sampled_at))[1])::float8
                   / (extract(epoch from max(sampled_at) - min(sampled_at)) / 86400) end
                 from wombat.database_size_samples where sampled_at > now() - interval '8 days') end) as growth`.execute(db)
  ).rows;
  const largest = !sizes
    ? { rows: [] as { table: string; bytes: string }[] }
    : await sql<{ table: string; bytes: string }>`
    select coalesce(pg_partition_root(c.oid), c.oid)::regclass::text as table, sum(pg_total_relation_size(c.oid))::text as bytes
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('wombat', ${BOSS_SCHEMA}) and c.relkind in ('r', 'm')
    group by 1 order by sum(pg_total_relation_size(c.oid)) desc limit ${LARGEST_SHOWN}`.execute(db);
  const hot = await sql<{ table: string; live: string; dead: string; last_vacuum: Date | null }>`
    with recursive parts(root, relid) as (
      select c.oid, c.oid from pg_class c where c.oid = any(array[${sql.join(HOT_TABLES.map((t) => sql`to_regclass(${t})`))}]::oid[])
      union all
      select p.root, i.inhrelid from parts p join pg_inherits i on i.inhparent = p.relid)
    select p.root::regclass::text as table, coalesce(sum(s.n_live_tup), 0)::text as live, coalesce(sum(s.n_dead_tup), 0)::text as dead,
           max(greatest(s.last_autovacuum, s.last_vacuum)) as last_vacuum
    from parts p left join pg_stat_user_tables s on s.relid = p.relid group by p.root order by 1`.execute(db);
  const m = main!;
  return {
    size_bytes: Number(m.size),
    growth_bytes_per_day: m.growth === null ? null : Math.round(m.growth),
    connections: { used: m.used, max: m.max, ratio: Math.round((m.used / m.max) * 10_000) / 10_000 },
    oldest_transaction_s: m.oldest === null ? null : Math.round(m.oldest * 10) / 10,
    largest_tables: largest.rows.map((r) => ({ table: r.table, bytes: Number(r.bytes) })),
    hot_tables: hot.rows.map((r) => {
      const live = Number(r.live);
      const dead = Number(r.dead);
      return { table: r.table, live_rows: live, dead_rows: dead, dead_ratio: live + dead === 0 ? 0 : Math.round((dead / (live + dead)) * 10_000) / 10_000, last_vacuum: r.last_vacuum ? new Date(r.last_vacuum).toISOString() : null };
    }),
    filesystems: await readFilesystems(paths, m.data_directory),
  };
}

/**
 * readDatabaseHealth at most once per `ttlMs` (the dashboard polls every few seconds,
 * Prometheus scrapes, and pg_database_size walks the data directory): concurrent
 * callers share one read, and a failed read is not kept.
 */
export function cachedDatabaseHealth(db: Db, paths: WatchedPath[], ttlMs = 30_000): () => Promise<DatabaseHealth> {
  let last: { atMs: number; value: Promise<DatabaseHealth> } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.atMs >= ttlMs) {
      const value = readDatabaseHealth(db, paths);
      const entry = { atMs: now, value };
      last = entry;
      value.catch(() => {
        if (last === entry) last = undefined;
      });
    }
    return last.value;
  };
}
