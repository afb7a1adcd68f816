import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { fromKysely, type JobInsert, type PgBoss } from 'pg-boss';
import { jobDefaults, type JobType } from '../jobs/contracts.ts';
import { DatabaseTimeoutError } from '../platform/errors.ts';
import type { Schedule } from '../schedules/types.ts';
import type { RunState, RunTrigger } from './states.ts';
import type { RunTables } from './tables.ts';

/**
 * Transitions that create runs: record (a run with its job, state queued), hold
 * (an occurrence without a job yet), and the finished records of skipped and
 * missed occurrences.
 */
type Db = Kysely<RunTables> | Transaction<RunTables>;

export interface PublishInput {
  job: JobType;
  /** Already validated with checkJobParams. */
  params: object;
  trigger: RunTrigger;
  scheduleId?: number | null;
  parentId?: string | null;
  /** The instant the run was meant for: the occurrence, or the request time. */
  scheduledFor?: Date;
  timeoutSeconds?: number;
  retryLimit?: number;
  retryDelaySeconds?: number;
  retryBackoff?: boolean;
  startAfter?: Date;
  priority?: number;
  singletonKey?: string;
  /** pg-boss job heartbeat limit (at least 10); default: the queue's (bossHeartbeatSeconds of OUTAGE_GRACE_S). */
  heartbeatSeconds?: number;
  /** Defaults to a fresh uuid; it becomes both the run id and the pg-boss job id. */
  id?: string;
  /** The run this one requeues (dead-letter requeue, task retry). */
  retryOf?: string;
}

/** The pg-boss insert for a run: its id, its params, and the job's timeout and retry settings. */
export function jobInsertFor(
  input: Pick<PublishInput, 'job' | 'params' | 'timeoutSeconds' | 'retryLimit' | 'retryDelaySeconds' | 'retryBackoff' | 'startAfter' | 'priority' | 'singletonKey' | 'heartbeatSeconds'>,
  id: string,
): JobInsert {
  const defaults = jobDefaults[input.job];
  return {
    id,
    data: input.params,
    // Without a timeout of its own the job takes its queue's: the type's default, which npm run
    // migrate writes from JOB_TIMEOUT_SECONDS (queueOptions).
    ...(input.timeoutSeconds !== undefined ? { expireInSeconds: input.timeoutSeconds } : {}),
    retryLimit: input.retryLimit ?? defaults.retryLimit,
    retryDelay: input.retryDelaySeconds ?? defaults.retryDelaySeconds,
    retryBackoff: input.retryBackoff ?? defaults.retryBackoff,
    ...(input.heartbeatSeconds !== undefined ? { heartbeatSeconds: input.heartbeatSeconds } : {}),
    ...(input.startAfter ? { startAfter: input.startAfter } : {}),
    ...(input.priority !== undefined ? { priority: input.priority } : {}),
    ...(input.singletonKey ? { singletonKey: input.singletonKey } : {}),
  };
}

/**
 * A schedule's job settings as a run's job options: its own timeout and retries
 * where it sets them, the job's defaults where it leaves them null. The one mapping
 * for every run of a schedule: occurrences, released held runs, manual triggers.
 */
export function scheduleJobOptions(
  s: Pick<Schedule, 'timeoutSeconds' | 'maxRetries' | 'retryDelaySeconds' | 'retryBackoff'>,
): Pick<PublishInput, 'timeoutSeconds' | 'retryLimit' | 'retryDelaySeconds' | 'retryBackoff'> {
  return {
    ...(s.timeoutSeconds != null ? { timeoutSeconds: s.timeoutSeconds } : {}),
    ...(s.maxRetries != null ? { retryLimit: s.maxRetries } : {}),
    ...(s.retryDelaySeconds != null ? { retryDelaySeconds: s.retryDelaySeconds } : {}),
    ...(s.retryBackoff != null ? { retryBackoff: s.retryBackoff } : {}),
  };
}

/** The pg-boss insert for an occurrence of a schedule. */
export function jobInsertForSchedule(id: string, s: Pick<Schedule, 'job' | 'params' | 'timeoutSeconds' | 'maxRetries' | 'retryDelaySeconds' | 'retryBackoff'>): JobInsert {
  return jobInsertFor({ job: s.job, params: s.params, ...scheduleJobOptions(s) }, id);
}

/** Rows per insert statement: well inside Postgres's limit of 65535 parameters. */
const INSERT_CHUNK_ROWS = 1000;

/**
 * record: runs in state queued and their jobs, in the caller's transaction, so
 * each run row and its job exist together or not at all. Many runs cost one
 * multi-row insert and one pg-boss insert per job type, not a round trip each.
 */
export async function insertRunsAndSend(trx: Transaction<RunTables>, boss: PgBoss, inputs: PublishInput[]): Promise<string[]> {
  const ids = inputs.map((i) => i.id ?? randomUUID());
  for (let i = 0; i < inputs.length; i += INSERT_CHUNK_ROWS) {
    await trx
      .insertInto('wombat.runs')
      .values(
        inputs.slice(i, i + INSERT_CHUNK_ROWS).map((input, j) => ({
          id: ids[i + j]!,
          job: input.job,
          trigger: input.trigger,
          schedule_id: input.scheduleId ?? null,
          parent_id: input.parentId ?? null,
          scheduled_for: input.scheduledFor ?? sql<Date>`now()`,
          params: input.params,
          state: 'queued' as const,
          published_at: sql<Date>`now()`,
          ...(input.retryOf ? { retry_of: input.retryOf } : {}),
        })),
      )
      .execute();
  }
  const byJob = new Map<JobType, JobInsert[]>();
  inputs.forEach((input, i) => {
    const list = byJob.get(input.job) ?? [];
    list.push(jobInsertFor(input, ids[i]!));
    byJob.set(input.job, list);
  });
  for (const [job, jobs] of byJob) await boss.insert(job, jobs, { db: fromKysely(trx) });
  return ids;
}

/** SQLSTATE of publishRuns' deadline check. */
const DIVISION_BY_ZERO = '22012';

/**
 * record, in one transaction: runs in state queued and their jobs (with the
 * NOTIFY that wakes idle workers, when the queue notifies), so run rows and jobs
 * commit together or not at all. pg-boss writes its jobs through its documented
 * `insert(name, jobs, { db })` on the same transaction; the runs go in first.
 *
 * `notAfter`: the transaction's last statement fails instead of letting it commit
 * when the database's clock has passed it, so a caller that stops waiting at a
 * deadline (and says the write failed) can pass a slightly earlier instant and
 * know that nothing it gave up on commits later (a write delayed on the way, or a
 * server that was frozen). Rejects with DatabaseTimeoutError then.
 */
export async function publishRuns(db: Db, boss: PgBoss, inputs: PublishInput[], opts: { notAfter?: Date } = {}): Promise<string[]> {
  if (inputs.length === 0) return [];
  const started = Date.now();
  const job = inputs[0]!.job;
  if (inputs.some((i) => i.job !== job)) throw new Error('publishRuns writes runs of one job type at a time');
  const notAfter = opts.notAfter;
  try {
    const write = async (trx: Transaction<RunTables>): Promise<string[]> => {
      const ids = await insertRunsAndSend(trx, boss, inputs);
      // Past notAfter the check divides by zero: the divisor reads the clock, so it is
      // evaluated when the statement runs, the last one before the commit.
      if (notAfter) await sql`select 1 / (case when clock_timestamp() <= ${notAfter.toISOString()}::timestamptz then 1 else 0 end)`.execute(trx);
      return ids;
    };
    return db.isTransaction ? await write(db as Transaction<RunTables>) : await db.transaction().execute(write);
  } catch (err) {
    if (notAfter && (err as { code?: unknown }).code === DIVISION_BY_ZERO) {
      throw new DatabaseTimeoutError('transaction', Math.max(0, notAfter.getTime() - started), `publishing ${job} runs: past notAfter, not committed`);
    }
    throw err;
  }
}

/** Records one run and sends its job in the caller's transaction. */
export async function insertRunAndSend(trx: Transaction<RunTables>, boss: PgBoss, input: PublishInput): Promise<string> {
  const [id] = await insertRunsAndSend(trx, boss, [input]);
  return id!;
}

/** Records a run and sends its job in a statement of its own (publishRuns). */
export async function publishRun(db: Kysely<RunTables>, boss: PgBoss, input: PublishInput): Promise<string> {
  const [id] = await publishRuns(db, boss, [input]);
  return id!;
}

/** A run that never becomes a job: a skipped or missed occurrence, with the reason. */
export async function recordUnpublishedRun(
  db: Db,
  row: { job: string; scheduleId: number; scheduledFor: Date; state: Extract<RunState, 'skipped' | 'missed'>; reason: string; params: object },
): Promise<string | undefined> {
  const id = randomUUID();
  const inserted = await db
    .insertInto('wombat.runs')
    .values({
      id,
      job: row.job,
      trigger: 'schedule',
      schedule_id: row.scheduleId,
      scheduled_for: row.scheduledFor,
      state: row.state,
      reason: row.reason,
      params: row.params,
      finished_at: sql<Date>`now()`,
    })
    .onConflict((oc) => oc.columns(['schedule_id', 'scheduled_for']).where('trigger', '=', 'schedule').doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted?.id;
}

export interface OccurrenceRow {
  id: string;
  schedule_id: number;
  job: string;
  scheduled_for: string;
  /** queued: published now (the caller sends its job); held: no job until released; skipped | missed: recorded only. */
  state: Extract<RunState, 'waiting' | 'queued' | 'held' | 'skipped' | 'missed'>;
  reason: string | null;
  params: object;
  /**
   * A queued row's transaction is prepared ahead and committed at this instant (the
   * occurrence's fire instant): its published_at is this, not the earlier statement time.
   */
  commit_at?: string;
}

/**
 * record / hold for schedule occurrences, under the (schedule_id, scheduled_for)
 * unique index. Returns the rows this call inserted: an occurrence another
 * engine recorded first is not returned, so its job is never sent twice. Rows go
 * in (schedule, instant) order so that two engines inserting overlapping batches
 * lock in the same order. Batches travel as one JSON parameter: one round trip.
 */
export async function recordOccurrences(db: Db, rows: OccurrenceRow[]): Promise<{ id: string; schedule_id: number }[]> {
  if (rows.length === 0) return [];
  const result = await sql<{ id: string; schedule_id: number }>`
    insert into wombat.runs (id, job, trigger, schedule_id, scheduled_for, state, reason, params, published_at, finished_at)
    select id, job, 'schedule', schedule_id, scheduled_for, state, reason, params,
           case when state = 'queued' then greatest(now(), commit_at) end,
           case when state in ('skipped', 'missed') then now() end
    from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as v(
      id uuid, schedule_id bigint, job text, scheduled_for timestamptz, state text, reason text, params jsonb, commit_at timestamptz)
    order by schedule_id, scheduled_for
    on conflict (schedule_id, scheduled_for) where trigger = 'schedule' do nothing
    returning id, schedule_id`.execute(db);
  return result.rows;
}

/**
 * record for a fan-out: child runs of `parentId` and their jobs, once. The parent
 * row is locked first and a retry of a parent that already created its children
 * creates none, so nothing is duplicated.
 */
export async function recordChildRuns(db: Kysely<RunTables>, boss: PgBoss, parentId: string, inputs: Omit<PublishInput, 'parentId' | 'trigger'>[]): Promise<{ children: number; reused: boolean }> {
  return db.transaction().execute(async (trx) => {
    const parent = await trx.selectFrom('wombat.runs').select('schedule_id').where('id', '=', parentId).forUpdate().executeTakeFirst();
    const existing = await trx
      .selectFrom('wombat.runs')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('parent_id', '=', parentId)
      .executeTakeFirstOrThrow();
    if (existing.n > 0) return { children: existing.n, reused: true };
    if (inputs.length === 0) return { children: 0, reused: false };
    await insertRunsAndSend(
      trx,
      boss,
      // Children carry the parent's schedule, so its overlap policy and history cover them.
      inputs.map((input) => ({ ...input, trigger: 'fanout' as const, parentId, scheduleId: parent?.schedule_id ?? null })),
    );
    return { children: inputs.length, reused: false };
  });
}
