import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, type RawBuilder, sql } from 'kysely';
import type postgres from 'postgres';
import type { Sql } from '../platform/db.ts';
import type { RunTables } from './tables.ts';

/**
 * Roll-ups of wombat.runs (migration 0018_run_rollups.sql): counts by minute, job,
 * state and duration bucket, kept by statement-level triggers on wombat.runs, so
 * every writer feeds them, and read without scanning the runs. Triggers insert
 * deltas; foldRunCounts moves them into wombat.run_counts; readRunCounts adds
 * both in one statement, so an answer equals count(*) over wombat.runs at its
 * snapshot (windows start on a whole minute).
 */
export type RunCountKind = 'created' | 'current' | 'finished' | 'finished_total' | 'dead_letters' | 'lateness_hourly';

/** The upper bounds (s) of the duration buckets: wombat.run_duration_bucket's, bucket i is the first bound d is at most. */
export const RUN_DURATION_BUCKETS_SECONDS = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600] as const;

const FOLD_LOCK = 'wombat.run_counts';

/**
 * Moves the deltas the triggers wrote into wombat.run_counts: one upsert per key,
 * keys in order (no deadlock with anything that locks them in the same order), and
 * deletes the keys that fell to nothing (a minute whose runs retention deleted).
 * One engine at a time (advisory lock); returns the deltas folded, or null when
 * another holds the lock. Deltas committed while it runs wait for the next fold.
 */
export async function foldRunCounts(db: Kysely<RunTables>): Promise<number | null> {
  return db.transaction().execute(async (trx) => {
    const { rows: lock } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(hashtext(${FOLD_LOCK})) as locked`.execute(trx);
    if (lock[0]?.locked !== true) return null;
    const { rows } = await sql<{ folded: number; emptied: unknown[] | null }>`
      with moved as (delete from wombat.run_count_deltas returning *),
      sums as (
        select kind, minute, job, state, bucket, sum(n)::bigint as n, sum(duration_s) as duration_s, count(*) as deltas
        from moved group by 1, 2, 3, 4, 5
      ),
      upserted as (
        insert into wombat.run_counts (kind, minute, job, state, bucket, n, duration_s)
        select kind, minute, job, state, bucket, n, duration_s from sums order by 1, 2, 3, 4, 5
        on conflict (kind, minute, job, state, bucket)
        do update set n = wombat.run_counts.n + excluded.n, duration_s = wombat.run_counts.duration_s + excluded.duration_s
        returning kind, minute, job, state, bucket, n
      )
      select (select coalesce(sum(deltas), 0)::int from sums) as folded,
             (select jsonb_agg(jsonb_build_object('kind', kind, 'minute', minute, 'job', job, 'state', state, 'bucket', bucket))
              from upserted where n = 0) as emptied`.execute(trx);
    const folded = rows[0]?.folded ?? 0;
    const emptied = rows[0]?.emptied ?? null;
    // A key at zero has nothing left to count (its runs were deleted, or moved to another
    // state). The upsert's statement cannot delete rows it wrote itself: a second one does.
    if (emptied !== null && emptied.length > 0) {
      await sql`
        delete from wombat.run_counts c
        using jsonb_to_recordset(${JSON.stringify(emptied)}::text::jsonb) as z(kind text, minute timestamptz, job text, state text, bucket smallint)
        where (c.kind, c.minute, c.job, c.state, c.bucket) = (z.kind, z.minute, z.job, z.state, z.bucket) and c.n = 0`.execute(trx);
    }
    return folded;
  });
}

export interface RunCountRow {
  /** The hour of the minutes summed (hourly reads); null otherwise. */
  hour: Date | null;
  job: string;
  state: string;
  /**
   * Duration bucket (index into RUN_DURATION_BUCKETS_SECONDS, 13 above the last, -1 never started);
   * lateness_hourly: lateness bucket (runLatenessBucketMs); 0 for kinds without either.
   */
  bucket: number;
  n: number;
  /** Sum of the durations of the started runs counted, in seconds. */
  duration_s: number;
}

export interface RunCountQuery {
  kind: RunCountKind;
  /** Only minutes from the one holding now() - windowSeconds on (hours, for lateness_hourly). */
  windowSeconds?: number;
  /** Sum by hour of the minute instead of over the whole window. */
  hourly?: boolean;
}

/** Compiles statements for a postgres.js client (the api's reads); it never connects. */
const compiler = new Kysely<RunTables>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

/**
 * Counts of one kind by job, state and bucket (and hour): the folded counts plus
 * the deltas not folded yet, in one statement. Its cost follows the minutes in the
 * window and the deltas since the last fold, never the runs. `db`: a Kysely handle
 * or a postgres.js client.
 */
export async function readRunCounts(db: Sql | Kysely<RunTables>, q: RunCountQuery): Promise<RunCountRow[]> {
  // Minutes and hours are UTC ones, counted from the epoch as the triggers count them, whatever
  // the session's time zone.
  const floorTo = (seconds: number, t: RawBuilder<unknown>) => sql`to_timestamp(floor(extract(epoch from ${t}) / ${sql.lit(seconds)}) * ${sql.lit(seconds)})`;
  const grain = q.kind === 'lateness_hourly' ? 3600 : 60;
  const from = q.windowSeconds === undefined ? sql`'-infinity'::timestamptz` : floorTo(grain, sql`now() - make_interval(secs => ${q.windowSeconds})`);
  const hour = q.hourly === true ? floorTo(3600, sql`minute`) : sql`null::timestamptz`;
  const firstWholeHour = sql`${floorTo(3600, from)} + interval '1 hour'`;
  // Runs created: whole hours from the hourly counts, the minutes before the first whole hour
  // from the per-minute ones, so a day is about 24 + 60 rows a key rather than 1,440.
  const parts =
    q.kind === 'created' && q.windowSeconds !== undefined
      ? [
          sql`kind = 'created' and minute >= ${from} and minute < ${firstWholeHour}`,
          sql`kind = 'created_hourly' and minute >= ${firstWholeHour}`,
        ]
      : [sql`kind = ${q.kind} and minute >= ${from}`];
  const sources = parts.flatMap((where) => [
    sql`select minute, job, state, bucket, n, duration_s from wombat.run_counts where ${where}`,
    sql`select minute, job, state, bucket, n, duration_s from wombat.run_count_deltas where ${where}`,
  ]);
  const union = sources.reduce((all, s) => sql`${all} union all ${s}`);
  const query = sql<{ hour: Date | null; job: string; state: string; bucket: number; n: string; duration_s: number }>`
    select ${hour} as hour, job, state, bucket, sum(n)::text as n, sum(duration_s)::float8 as duration_s from (${union}) c
    group by 1, 2, 3, 4
    having sum(n) <> 0`;
  let rows: { hour: Date | null; job: string; state: string; bucket: number; n: string; duration_s: number }[];
  if (typeof db === 'function') {
    const compiled = query.compile(compiler);
    rows = await db.unsafe(compiled.sql, compiled.parameters as postgres.ParameterOrJSON<never>[]);
  } else {
    rows = (await query.execute(db)).rows;
  }
  return rows.map((r) => ({ ...r, n: Number(r.n) }));
}

/**
 * Runs now in wombat.runs, of one job and/or state (both optional), or its dead
 * letters: the roll-ups' current counts, folded and not, so the answer equals
 * count(*) at its snapshot without reading the runs.
 */
export async function countRuns(db: Kysely<RunTables>, f: { job?: string | undefined; state?: string | undefined; deadLetters?: boolean }): Promise<number> {
  const where = sql`kind = ${f.deadLetters === true ? 'dead_letters' : 'current'} and minute = '-infinity'
    and (${f.job ?? null}::text is null or job = ${f.job ?? null}) and (${f.state ?? null}::text is null or state = ${f.state ?? null})`;
  const { rows } = await sql<{ n: string }>`
    select coalesce(sum(n), 0)::text as n from (
      select n from wombat.run_counts where ${where}
      union all
      select n from wombat.run_count_deltas where ${where}) c`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

/** The upper bound (ms) of a lateness_hourly bucket: wombat.run_lateness_bucket's buckets are 5% wide. */
export function runLatenessBucketMs(bucket: number): number {
  return bucket <= 0 ? 1 : 1.05 ** bucket;
}
