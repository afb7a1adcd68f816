import { sql, type Kysely, type Transaction } from 'kysely';
import type { JobType } from '../jobs/contracts.ts';
import { AppError, SQLSTATE, sqlState, ValidationError } from '../platform/errors.ts';
import type { SchedulerTables, ScheduleRow } from './tables.ts';
import type { MissedPolicy, OverlapPolicy, Schedule, ScheduleDefinition, SchedulePatch, ScheduleStatus, ScheduleTrigger } from './types.ts';
import { SCHEDULE_DEFAULTS } from './schema.ts';
import { mergeSchedulePatch } from './validate.ts';

/**
 * Schedule statements, one function per statement, database handle first: the only
 * writer of wombat.schedules, for the definitions (api, CLI, the engine's built-ins)
 * and for the engine's bookkeeping (next and last occurrence) alike.
 */
type Db = Kysely<SchedulerTables> | Transaction<SchedulerTables>;

export function rowToSchedule(r: ScheduleRow): Schedule {
  const trigger: ScheduleTrigger =
    r.kind === 'cron'
      ? { kind: 'cron', cron: r.cron! }
      : r.kind === 'every'
        ? { kind: 'every', every: r.every!, everySeconds: r.every_seconds! }
        : { kind: 'times', times: r.times! };
  return {
    id: r.id,
    name: r.name,
    job: r.job as JobType,
    trigger,
    timezone: r.timezone,
    params: (r.params ?? {}) as object,
    overlap: r.overlap as OverlapPolicy,
    missed: r.missed as MissedPolicy,
    catchupWindowSeconds: r.catchup_window_seconds,
    catchupMax: r.catchup_max,
    jitterSeconds: r.jitter_seconds,
    timeoutSeconds: r.timeout_seconds,
    maxRetries: r.max_retries,
    retryDelaySeconds: r.retry_delay_seconds,
    retryBackoff: r.retry_backoff,
    status: r.status as ScheduleStatus,
    pausedReason: r.paused_reason,
    builtIn: r.built_in,
    version: r.version,
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
    nextRunAt: r.next_run_at ? new Date(r.next_run_at) : null,
    lastRunAt: r.last_run_at ? new Date(r.last_run_at) : null,
    lastRunId: r.last_run_id,
    after: r.after ?? [],
    waitForSeconds: r.wait_for_seconds ?? SCHEDULE_DEFAULTS.waitForSeconds,
  };
}

/** A text[] literal; names may hold quotes, commas and backslashes, so every element is quoted. */
function textArrayLiteral(values: string[]): string {
  return `{${values.map((v) => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}

function definitionColumns(d: ScheduleDefinition) {
  const t = d.trigger;
  return {
    name: d.name,
    job: d.job,
    kind: t.kind,
    cron: t.kind === 'cron' ? t.cron : null,
    every: t.kind === 'every' ? t.every : null,
    every_seconds: t.kind === 'every' ? t.everySeconds : null,
    // Times are HH:MM[:SS] only, so the array literal needs no quoting.
    times: t.kind === 'times' ? sql<string[]>`${`{${t.times.join(',')}}`}::text[]` : null,
    timezone: d.timezone,
    params: d.params,
    overlap: d.overlap,
    missed: d.missed,
    catchup_window_seconds: d.catchupWindowSeconds,
    catchup_max: d.catchupMax,
    jitter_seconds: d.jitterSeconds,
    timeout_seconds: d.timeoutSeconds,
    max_retries: d.maxRetries,
    retry_delay_seconds: d.retryDelaySeconds,
    retry_backoff: d.retryBackoff,
    status: d.status,
    paused_reason: d.status === 'paused' ? d.pausedReason : null,
    after: sql<string[]>`${textArrayLiteral(d.after)}::text[]`,
    wait_for_seconds: d.waitForSeconds,
  };
}

function nameTaken(err: unknown, name: string | undefined): never {
  if (sqlState(err) === SQLSTATE.uniqueViolation) {
    throw new AppError('schedule_name_taken', `a schedule named "${name}" already exists; choose another name`, { cause: err });
  }
  // The database's own checks (migration 0012) say what to fix, e.g. a time zone PostgreSQL does not know.
  if (sqlState(err) === SQLSTATE.checkViolation && err instanceof Error) throw new ValidationError([err.message]);
  throw err;
}

function builtInRefused(s: Schedule, what: string): never {
  throw new AppError(
    'schedule_built_in',
    `schedule "${s.name}" is built in: its definition comes from the engine's configuration and cannot be ${what}; pause or resume it instead, or change the engine's environment`,
  );
}

export async function insertSchedule(db: Db, def: ScheduleDefinition): Promise<Schedule> {
  try {
    const row = await db.insertInto('wombat.schedules').values(definitionColumns(def)).returningAll().executeTakeFirstOrThrow();
    return rowToSchedule(row);
  } catch (err) {
    nameTaken(err, def.name);
  }
}

/**
 * Creates an ordinary schedule unless one of that name exists: a default an operator
 * then edits, pauses or deletes like their own (the report schedules). True when created.
 */
export async function insertScheduleIfAbsent(db: Db, def: ScheduleDefinition): Promise<boolean> {
  const row = await db.insertInto('wombat.schedules').values(definitionColumns(def)).onConflict((oc) => oc.column('name').doNothing()).returning('id').executeTakeFirst();
  return row !== undefined;
}

/**
 * Upserts a built-in schedule by name. Its definition follows the configuration;
 * its status and paused reason stay as an operator set them.
 */
export async function upsertBuiltInSchedule(db: Db, def: ScheduleDefinition): Promise<Schedule> {
  const { status: _s, paused_reason: _p, ...definition } = definitionColumns(def);
  const row = await db
    .insertInto('wombat.schedules')
    .values({ ...definitionColumns(def), built_in: true })
    .onConflict((oc) => oc.column('name').doUpdateSet(definition).where('wombat.schedules.built_in', '=', true))
    .returningAll()
    .executeTakeFirst();
  if (!row) throw new AppError('schedule_name_taken', `built-in schedule "${def.name}" clashes with a user schedule of that name; rename or delete that one`);
  return rowToSchedule(row);
}

/**
 * Removes the built-in schedule `name`, if there is one: its configuration is gone (a crawl without
 * sources). Its runs stay in the history; a later configuration creates it afresh. True when removed.
 */
export async function deleteBuiltInSchedule(db: Db, name: string): Promise<boolean> {
  const res = await db.deleteFrom('wombat.schedules').where('name', '=', name).where('built_in', '=', true).executeTakeFirst();
  return res.numDeletedRows > 0n;
}

export async function getSchedule(db: Db, id: number): Promise<Schedule | null> {
  if (!Number.isSafeInteger(id)) return null;
  const row = await db.selectFrom('wombat.schedules').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? rowToSchedule(row) : null;
}

export async function getScheduleByName(db: Db, name: string): Promise<Schedule | null> {
  const row = await db.selectFrom('wombat.schedules').selectAll().where('name', '=', name).executeTakeFirst();
  return row ? rowToSchedule(row) : null;
}

export async function listSchedules(db: Db): Promise<Schedule[]> {
  const rows = await db.selectFrom('wombat.schedules').selectAll().orderBy('id').execute();
  return rows.map(rowToSchedule);
}

/** Up to `limit` schedules with an id above `afterId`, by id: a page of a full read. */
export async function listSchedulesAfter(db: Db, afterId: number, limit: number): Promise<Schedule[]> {
  const rows = await db.selectFrom('wombat.schedules').selectAll().where('id', '>', afterId).orderBy('id').limit(limit).execute();
  return rows.map(rowToSchedule);
}

/**
 * Applies a validated PATCH. Returns null for an unknown id; throws
 * ValidationError when the merged definition does not hold together (params that
 * do not fit the job), AppError 'schedule_built_in' for a built-in's definition,
 * AppError 'schedule_name_taken' for a name in use.
 */
export async function updateSchedule(db: Db, id: number, patch: SchedulePatch): Promise<Schedule | null> {
  const current = await getSchedule(db, id);
  if (!current) return null;
  const definitionKeys = Object.keys(patch).filter((k) => k !== 'status' && k !== 'pausedReason');
  if (current.builtIn && definitionKeys.length > 0) builtInRefused(current, 'edited');
  const merged = mergeSchedulePatch(current, patch);
  if (!merged.ok) throw new ValidationError(merged.issues);
  try {
    const row = await db
      .updateTable('wombat.schedules')
      .set(definitionColumns(merged.value))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    return row ? rowToSchedule(row) : null;
  } catch (err) {
    nameTaken(err, merged.value.name);
  }
}

/**
 * False for an unknown id; AppError 'schedule_built_in' for a built-in, 'schedule_in_use' for a
 * prerequisite of other schedules. Its runs stay in the history.
 */
export async function deleteSchedule(db: Db, id: number): Promise<boolean> {
  const current = await getSchedule(db, id);
  if (!current) return false;
  if (current.builtIn) builtInRefused(current, 'deleted');
  try {
    const res = await db.deleteFrom('wombat.schedules').where('id', '=', id).executeTakeFirst();
    return res.numDeletedRows > 0n;
  } catch (err) {
    // Migration 0016 refuses to delete a schedule others wait for (after), naming them.
    if (sqlState(err) === SQLSTATE.checkViolation && err instanceof Error) throw new AppError('schedule_in_use', err.message, { cause: err });
    throw err;
  }
}

/** Pauses or resumes any schedule, built-in ones included. Null for an unknown id. */
export async function setScheduleStatus(db: Db, id: number, status: ScheduleStatus, reason?: string | null): Promise<Schedule | null> {
  if (!Number.isSafeInteger(id)) return null;
  const row = await db
    .updateTable('wombat.schedules')
    .set({ status, paused_reason: status === 'paused' ? (reason ?? null) : null })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
  return row ? rowToSchedule(row) : null;
}

/*
 * The engine's bookkeeping: next_run_at and last_run_* say where each schedule stands.
 * They are no definition change: the version trigger and the NOTIFY pass them over.
 */
export interface LastRunRow {
  id: number;
  last_run_at: string;
  last_run_id: string;
  next_at: string | null;
  /** The schedule version the occurrence was planned with. */
  version: number;
}

/**
 * Advances each schedule's last/next occurrence (status bookkeeping, outside the
 * publishing transaction). Never moves last_run_at backwards, so engines writing
 * in any order agree; next_run_at only while the definition is the one planned
 * with (an edit or pause since has set its own); rows go in id order so that
 * concurrent writers lock alike.
 */
export async function recordLastRuns(db: Db, rows: LastRunRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    update wombat.schedules s
    set last_run_at = v.last_run_at, last_run_id = v.last_run_id,
        next_run_at = case when s.version = v.version then v.next_at else s.next_run_at end
    from (select * from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(
            id bigint, last_run_at timestamptz, last_run_id uuid, next_at timestamptz, version integer) order by id) v
    where s.id = v.id and (s.last_run_at is null or s.last_run_at < v.last_run_at)`.execute(db);
}

/** Sets next_run_at for many schedules at once (null for paused ones). */
export async function setNextRunAt(db: Db, rows: { id: number; next_at: string | null }[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`
    update wombat.schedules s set next_run_at = v.next_at
    from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(id bigint, next_at timestamptz)
    where s.id = v.id and s.next_run_at is distinct from v.next_at`.execute(db);
}
