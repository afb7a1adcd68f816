import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { fromKysely, type JobInsert, type PgBoss } from 'pg-boss';
import type { CoreTables, RunState, RunTrigger } from './db-types.ts';
import { JOB_HEARTBEAT_SECONDS, jobDefaults, type JobType } from './jobs.ts';

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
  /** pg-boss job heartbeat (at least 10); default JOB_HEARTBEAT_SECONDS. */
  heartbeatSeconds?: number;
  /** Defaults to a fresh uuid; it becomes both the run id and the pg-boss job id. */
  id?: string;
}

/** The pg-boss insert for a run: its id, its params, and the job's timeout and retry settings. */
export function jobInsertFor(input: Pick<PublishInput, 'job' | 'params' | 'timeoutSeconds' | 'retryLimit' | 'retryDelaySeconds' | 'retryBackoff' | 'startAfter' | 'priority' | 'singletonKey' | 'heartbeatSeconds'>, id: string): JobInsert {
  const defaults = jobDefaults[input.job];
  return {
    id,
    data: input.params,
    expireInSeconds: input.timeoutSeconds ?? defaults.timeoutSeconds,
    retryLimit: input.retryLimit ?? defaults.retryLimit,
    retryDelay: input.retryDelaySeconds ?? defaults.retryDelaySeconds,
    retryBackoff: input.retryBackoff ?? defaults.retryBackoff,
    heartbeatSeconds: input.heartbeatSeconds ?? JOB_HEARTBEAT_SECONDS,
    ...(input.startAfter ? { startAfter: input.startAfter } : {}),
    ...(input.priority !== undefined ? { priority: input.priority } : {}),
    ...(input.singletonKey ? { singletonKey: input.singletonKey } : {}),
  };
}

/** Rows per insert statement: well inside Postgres's limit of 65535 parameters. */
const INSERT_CHUNK_ROWS = 1000;

/**
 * Records runs and sends their jobs in the caller's transaction, so each run row
 * and its job exist together or not at all. Many runs cost one multi-row insert
 * and one pg-boss insert per job type, not a round trip each.
 */
export async function insertRunsAndSend(trx: Transaction<CoreTables>, boss: PgBoss, inputs: PublishInput[]): Promise<string[]> {
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
          published_at: sql<Date>`now()`,
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

/** Records one run and sends its job in the caller's transaction. */
export async function insertRunAndSend(trx: Transaction<CoreTables>, boss: PgBoss, input: PublishInput): Promise<string> {
  const [id] = await insertRunsAndSend(trx, boss, [input]);
  return id!;
}

/** Records a run and sends its job in a transaction of its own. */
export async function publishRun(db: Kysely<CoreTables>, boss: PgBoss, input: PublishInput): Promise<string> {
  return db.transaction().execute((trx) => insertRunAndSend(trx, boss, input));
}

/** A run that never becomes a job: a skipped or missed occurrence, with the reason. */
export async function recordUnpublishedRun(
  db: Kysely<CoreTables>,
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
