import { randomUUID } from 'node:crypto';
import { AppError, DatabaseTimeoutError, insertRunsAndSend, type CoreTables, type Logger, type PgBoss, type PublishInput } from '@wombat/core';
import type { Kysely } from 'kysely';

/** Most submissions written in one transaction. */
export const MAX_SUBMIT_BATCH = 100;

/** What a task submission sets; the rest of PublishInput (schedule, parent, start time, priority) stays unset. */
export type Submission = Pick<PublishInput, 'job' | 'params' | 'trigger' | 'timeoutSeconds' | 'retryLimit' | 'retryDelaySeconds' | 'retryBackoff'>;

/** What /health reads of an in-process writer. */
export interface WriterHealth {
  ok: boolean;
  /** Age of the write in flight, 0 when idle. */
  in_flight_ms: number;
  /** Submissions waiting for a write. */
  queued: number;
  /** Writes given up at their deadline whose transaction has not settled yet. */
  abandoned_unsettled: number;
  problem?: string;
}

export interface Submitter {
  /** Records the run and sends its job; resolves with the run id once committed. Rejects within about 2 x deadlineMs. */
  submit(input: Submission): Promise<string>;
  health(): WriterHealth;
}

export interface SubmitterOptions {
  /** A write (one transaction) that takes longer is abandoned and its submissions answered 503. */
  deadlineMs: number;
  /**
   * An abandoned transaction still unsettled after this long means database calls
   * outlive their own deadlines: /health reports the writer stuck, so it gets restarted.
   */
  stuckAfterMs: number;
  log: Logger;
}

interface Pending {
  input: Submission & { id: string };
  resolve: (id: string) => void;
  reject: (err: unknown) => void;
  timer: NodeJS.Timeout;
  settled: boolean;
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
 *
 * The writer never wedges: a submission still queued at its deadline is answered
 * 503 without being written, and a write still in flight at its deadline is
 * abandoned (its submissions answered 503; the transaction rolls back instead of
 * committing if it gets that far) so the next batch is written at once.
 */
export function createSubmitter(db: Kysely<CoreTables>, boss: PgBoss, opts: SubmitterOptions): Submitter {
  const log = opts.log.child({ component: 'submitter' });
  let queue: Pending[] = [];
  let writing = false;
  let inFlightSince = 0;
  const abandoned = new Map<number, number>(); // write number -> abandoned at
  let writes = 0;

  function settle(p: Pending, outcome: { id: string } | { err: unknown }): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    if ('id' in outcome) p.resolve(outcome.id);
    else p.reject(outcome.err);
  }

  async function write(batch: Pending[]): Promise<void> {
    const n = ++writes;
    let giveUp = false;
    const tx = db.transaction().execute(async (trx) => {
      await insertRunsAndSend(trx, boss, batch.map((p) => p.input));
      // Answered 503 meanwhile: roll back rather than commit runs nobody was told about.
      if (giveUp) throw new AppError('submission_abandoned', 'the submission passed its deadline before commit');
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => (timer = setTimeout(() => resolve('deadline'), opts.deadlineMs)));
    const outcome = await Promise.race([tx.then(() => 'ok' as const, (err: unknown) => ({ err })), deadline]);
    clearTimeout(timer);
    if (outcome === 'ok') {
      for (const p of batch) settle(p, { id: p.input.id });
    } else if (outcome === 'deadline') {
      giveUp = true;
      abandoned.set(n, Date.now());
      log.error({ submissions: batch.length, deadlineMs: opts.deadlineMs }, 'task submission write passed its deadline; abandoned, answering 503');
      const err = new DatabaseTimeoutError('transaction', opts.deadlineMs, 'task submission');
      for (const p of batch) settle(p, { err });
      void tx
        .catch(() => {})
        .finally(() => {
          abandoned.delete(n);
          log.info({ write: n }, 'abandoned task submission write settled');
        });
    } else {
      for (const p of batch) settle(p, outcome);
    }
  }

  async function drain(): Promise<void> {
    writing = true;
    try {
      while (queue.length > 0) {
        const batch = queue.filter((p) => !p.settled).slice(0, MAX_SUBMIT_BATCH);
        const taken = new Set(batch);
        queue = queue.filter((p) => !p.settled && !taken.has(p));
        if (batch.length === 0) continue;
        inFlightSince = Date.now();
        await write(batch);
      }
    } finally {
      inFlightSince = 0;
      writing = false;
    }
  }

  return {
    submit(input) {
      return new Promise<string>((resolve, reject) => {
        const p: Pending = { input: { ...input, id: randomUUID() }, resolve, reject, settled: false, timer: undefined as unknown as NodeJS.Timeout };
        // Still queued at the deadline (the write ahead of it is slow): answered without being written.
        p.timer = setTimeout(() => {
          if (queue.includes(p)) {
            queue = queue.filter((x) => x !== p);
            settle(p, { err: new DatabaseTimeoutError('call', opts.deadlineMs, 'task submission waiting to be written') });
          }
        }, opts.deadlineMs);
        queue.push(p);
        if (!writing) void drain();
      });
    },
    health() {
      const now = Date.now();
      const inFlightMs = inFlightSince ? now - inFlightSince : 0;
      const oldestAbandoned = Math.min(...abandoned.values());
      let problem: string | undefined;
      if (inFlightMs > 2 * opts.deadlineMs) problem = `a write has been in flight for ${inFlightMs} ms, past its deadline`;
      else if (abandoned.size > 0 && now - oldestAbandoned > opts.stuckAfterMs) {
        problem = `${abandoned.size} abandoned write(s) unsettled for more than ${opts.stuckAfterMs} ms`;
      }
      return {
        ok: problem === undefined,
        in_flight_ms: inFlightMs,
        queued: queue.length,
        abandoned_unsettled: abandoned.size,
        ...(problem ? { problem } : {}),
      };
    },
  };
}
