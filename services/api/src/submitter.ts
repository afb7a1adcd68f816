import { randomUUID } from 'node:crypto';
import { insertRunsAndSend, type CoreTables, type PgBoss, type PublishInput } from '@wombat/core';
import type { Kysely } from 'kysely';

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
 * a submission arriving while no write is in flight is written at once, alone;
 * those arriving meanwhile are written together by the next transaction (core's
 * insertRunsAndSend: one multi-row insert and one pg-boss insert per job type),
 * so a batch costs one commit. No timer is involved: batches form only under load, and a lone
 * caller never waits for company. Measured with bench/submit-latency.ts.
 */
export function createSubmitter(db: Kysely<CoreTables>, boss: PgBoss): Submitter {
  let queue: Pending[] = [];
  let writing = false;

  async function drain(): Promise<void> {
    writing = true;
    try {
      while (queue.length > 0) {
        const batch = queue.slice(0, MAX_SUBMIT_BATCH);
        queue = queue.slice(batch.length);
        try {
          await db.transaction().execute((trx) => insertRunsAndSend(trx, boss, batch.map((p) => p.input)));
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
