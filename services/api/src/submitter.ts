import { randomUUID } from 'node:crypto';
import { fromKysely, insertRunAndSend, jobDefaults, type CoreTables, type PgBoss, type PublishInput } from '@wombat/core';
import { sql, type Kysely, type Transaction } from 'kysely';

/** Most submissions written in one transaction. */
export const MAX_SUBMIT_BATCH = 100;

/** What a task submission sets; the rest of PublishInput (schedule, parent, start time, priority) stays unset. */
export type Submission = Pick<PublishInput, 'job' | 'params' | 'trigger' | 'timeoutSeconds' | 'retryLimit' | 'retryDelaySeconds' | 'retryBackoff'>;

export interface Submitter {
  /** Records the run and sends its job; resolves with the run id once committed. */
  submit(input: Submission): Promise<string>;
}

interface Pending {
  input: Submission & { id: string };
  resolve: (id: string) => void;
  reject: (err: unknown) => void;
}

/**
 * Group commit for task submissions. Every submission commits a NOTIFY (pg-boss
 * wakes the workers) and Postgres serialises commits that notify, WAL flush
 * included, so concurrent single-row transactions queue behind each other. Here
 * a submission arriving while no write is in flight is written at once, alone,
 * by core's insertRunAndSend; those arriving meanwhile are written together by the
 * next transaction: one multi-row insert into wombat.runs (the same columns
 * insertRunAndSend writes) and one pg-boss insert per job type, so a batch costs
 * one commit. No timer is involved: batches form only under load, and a lone
 * caller never waits for company. Measured with bench/submit-latency.ts.
 */
export function createSubmitter(db: Kysely<CoreTables>, boss: PgBoss): Submitter {
  let queue: Pending[] = [];
  let writing = false;

  // Keep in step with insertRunAndSend in @wombat/core (runs.ts).
  async function insertRuns(trx: Transaction<CoreTables>, inputs: (Submission & { id: string })[]): Promise<void> {
    await trx
      .insertInto('wombat.runs')
      .values(
        inputs.map((i) => ({
          id: i.id,
          job: i.job,
          trigger: i.trigger,
          schedule_id: null,
          parent_id: null,
          scheduled_for: sql<Date>`now()`,
          params: i.params,
          published_at: sql<Date>`now()`,
        })),
      )
      .execute();
  }

  async function drain(): Promise<void> {
    writing = true;
    try {
      while (queue.length > 0) {
        const batch = queue.slice(0, MAX_SUBMIT_BATCH);
        queue = queue.slice(batch.length);
        try {
          await db.transaction().execute(async (trx) => {
            if (batch.length === 1) {
              await insertRunAndSend(trx, boss, batch[0]!.input);
              return;
            }
            await insertRuns(trx, batch.map((p) => p.input));
            const byJob = new Map<string, (Submission & { id: string })[]>();
            for (const p of batch) byJob.set(p.input.job, [...(byJob.get(p.input.job) ?? []), p.input]);
            for (const [job, inputs] of byJob) {
              await boss.insert(
                job,
                inputs.map((i) => ({
                  id: i.id,
                  data: i.params,
                  expireInSeconds: i.timeoutSeconds ?? jobDefaults[i.job].timeoutSeconds,
                  retryLimit: i.retryLimit ?? jobDefaults[i.job].retryLimit,
                  retryDelay: i.retryDelaySeconds ?? jobDefaults[i.job].retryDelaySeconds,
                  retryBackoff: i.retryBackoff ?? jobDefaults[i.job].retryBackoff,
                })),
                { db: fromKysely(trx) },
              );
            }
          });
          for (const p of batch) p.resolve(p.input.id);
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      writing = false;
    }
  }

  return {
    submit(input) {
      return new Promise<string>((resolve, reject) => {
        queue.push({ input: { ...input, id: randomUUID() }, resolve, reject });
        if (!writing) void drain();
      });
    },
  };
}
