import { BOSS_SCHEMA } from '../platform/boss.ts';
import type { Sql } from '../platform/db.ts';

/**
 * Access paths of the reconciler's sweeps into pg-boss's job table, which has no index on
 * state: without them each sweep is a scan of every job pg-boss keeps, queued ones included.
 * Both are partial, so they hold only what the sweeps read: the active jobs (as many as attempts
 * in flight) and the failed ones by when they failed (read over the last minutes only).
 * On job_common, the partition that holds every queue Wombat creates.
 */
const JOB_INDEXES = [
  { name: 'job_common_wombat_active', def: "(name, id) where state = 'active'" },
  { name: 'job_common_wombat_failed', def: "(completed_on) where state = 'failed'" },
] as const;

/**
 * Creates the indexes that are missing (CONCURRENTLY: a busy queue keeps working), and again any
 * an interrupted build left invalid. Runs after pg-boss's schema is in place; returns the names
 * it built.
 */
export async function ensureJobIndexes(sql: Sql): Promise<string[]> {
  const [table] = await sql<{ ok: boolean }[]>`select to_regclass(${`${BOSS_SCHEMA}.job_common`}) is not null as ok`;
  if (!table?.ok) return [];
  const built: string[] = [];
  for (const ix of JOB_INDEXES) {
    const [row] = await sql<{ valid: boolean }[]>`
      select i.indisvalid as valid from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${BOSS_SCHEMA} and c.relname = ${ix.name}`;
    if (row?.valid) continue;
    if (row) await sql.unsafe(`drop index concurrently if exists ${BOSS_SCHEMA}.${ix.name}`);
    await sql.unsafe(`create index concurrently ${ix.name} on ${BOSS_SCHEMA}.job_common ${ix.def}`);
    built.push(ix.name);
  }
  return built;
}
