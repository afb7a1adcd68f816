import { randomUUID } from 'node:crypto';
import { DatabaseTimeoutError, withDeadline, type Logger, type PgBoss } from '@wombat/core/platform';
import { publishRuns, type PublishInput } from '@wombat/core/runs';
import type { CoreTables } from '@wombat/core/tables';
import { sql, type Kysely } from 'kysely';

/** Most submissions written by one transaction. */
export const MAX_SUBMIT_BATCH = 100;

/** What a task submission sets; the rest of PublishInput (schedule, parent, start time, priority) stays unset. */
export type Submission = Pick<PublishInput, 'job' | 'params' | 'trigger' | 'timeoutSeconds' | 'retryLimit' | 'retryDelaySeconds' | 'retryBackoff'>;

/** What /health reads of an in-process writer. */
export interface WriterHealth {
  ok: boolean;
  /** Age of the oldest write in flight, 0 when idle. */
  in_flight_ms: number;
  /** Submissions waiting for a write. */
  queued: number;
  /** Writes given up at their deadline whose statement has not settled yet. */
  abandoned_unsettled: number;
  problem?: string;
}

export interface Submitter {
  /** Records the run and sends its job; resolves with the run id once committed. Rejects within about 2 x deadlineMs. */
  submit(input: Submission): Promise<string>;
  /**
   * Records every run and sends every job in one transaction, all or none (a batch of
   * one job type); resolves with the run ids in order. Its deadline grows with its size.
   */
  submitAll(inputs: Submission[]): Promise<string[]>;
  health(): WriterHealth;
}

export interface SubmitterOptions {
  /** A write (one transaction) that takes longer is abandoned and its submissions answered 503. */
  deadlineMs: number;
  /**
   * An abandoned write still unsettled after this long means database calls
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
 * Writes in flight at once. One: commits that notify are serialised by Postgres
 * anyway, so a second write in flight mostly splits the batches, and each write
 * costs PostgreSQL a commit and a NOTIFY (bench/submit-latency.ts measured two and
 * three lanes slower than one, with more CPU per submission).
 */
export const SUBMIT_LANES = 1;

/**
 * Group commit for task submissions. Every submission commits a NOTIFY (pg-boss
 * wakes the workers) and Postgres serialises commits that notify, WAL flush
 * included, so concurrent single-row transactions queue behind each other. Here
 * each write is one short transaction (core's publishRuns: runs, then pg-boss's
 * jobs and NOTIFY through its own insert, committed together). A submission arriving while no write is in
 * flight (SUBMIT_LANES) is written at once, alone; those arriving meanwhile are
 * written together (by job type) by the next write, so a batch costs one
 * commit. No timer is involved: batches form only under load, and a lone caller
 * never waits for company. Measured with bench/submit-latency.ts.
 *
 * The writer never wedges: a submission still queued at its deadline is answered
 * 503 without being written, and a write still in flight at its deadline is
 * abandoned (its submissions answered 503) so the next batch is written at
 * once. The write carries the instant it may no longer commit, a little before
 * the deadline by the database's clock, checked last, so an abandoned write rolls back
 * even when it reaches the server late (a frozen or overloaded server).
 */
export function createSubmitter(db: Kysely<CoreTables>, boss: PgBoss, opts: SubmitterOptions): Submitter {
  const log = opts.log.child({ component: 'submitter' });
  // Room left between the database's last moment to commit and the answer 503: the commit
  // itself (WAL flush, the NOTIFY lock) and the difference between the two machines' clocks.
  const commitMarginMs = Math.min(250, opts.deadlineMs / 4);
  // The database's clock minus this machine's, so notAfter is an instant on the database's clock
  // even when the two machines' clocks disagree. Read at start, then at most once a minute (and at
  // once after a write refused as past its deadline), off the write path.
  let clockOffsetMs = 0;
  let clockReadAt = -Infinity;
  let readingClock = false;
  function readClock(): void {
    if (readingClock) return;
    readingClock = true;
    clockReadAt = performance.now();
    const sent = Date.now();
    void sql<{ ms: number }>`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`
      .execute(db)
      .then(({ rows }) => {
        const received = Date.now();
        const offset = rows[0]!.ms - (sent + received) / 2;
        if (Math.abs(offset) > 1000 && Math.abs(offset - clockOffsetMs) > 1000) {
          log.warn({ offsetMs: Math.round(offset) }, "the database's clock differs from this machine's by more than a second; submissions' deadlines follow the database's clock");
        }
        clockOffsetMs = offset;
      })
      .catch((err: unknown) => log.debug({ err }, "could not read the database's clock; keeping the last offset"))
      .finally(() => (readingClock = false));
  }
  readClock();
  let queue: Pending[] = [];
  const inFlight = new Map<number, number>(); // write number -> started at
  const abandoned = new Map<number, number>(); // write number -> abandoned at
  let writes = 0;

  function settle(p: Pending, outcome: { id: string } | { err: unknown }): void {
    if (p.settled) return;
    p.settled = true;
    clearTimeout(p.timer);
    if ('id' in outcome) p.resolve(outcome.id);
    else p.reject(outcome.err);
  }

  /** One transaction of `inputs` that commits before `deadlineMs` or not at all. */
  async function commit(n: number, inputs: (Submission & { id: string })[], deadlineMs: number): Promise<void> {
    if (performance.now() - clockReadAt > 60_000) readClock();
    const notAfter = new Date(Date.now() + clockOffsetMs + deadlineMs - commitMarginMs);
    const statement = publishRuns(db, boss, inputs, { notAfter });
    let passedDeadline = false;
    try {
      await withDeadline(statement, deadlineMs, 'task submission', {
        phase: 'transaction',
        onAbandoned: (late) => {
          passedDeadline = true;
          abandoned.set(n, Date.now());
          log.error({ submissions: inputs.length, deadlineMs }, 'task submission write passed its deadline; abandoned, answering 503');
          void late
            .then(
              // Only a commit slower than commitMarginMs, or clocks further apart, gets here.
              () => log.error({ write: n, runs: inputs.map((i) => i.id) }, 'abandoned task submission write committed after its submissions were answered 503'),
              () => log.info({ write: n }, 'abandoned task submission write settled'),
            )
            .finally(() => abandoned.delete(n));
        },
      });
    } catch (err) {
      // Refused as past its deadline well before it: the clocks may have moved apart; read them again.
      if (!passedDeadline && err instanceof DatabaseTimeoutError) readClock();
      throw err;
    }
  }

  async function write(n: number, batch: Pending[]): Promise<void> {
    try {
      await commit(
        n,
        batch.map((p) => p.input),
        opts.deadlineMs,
      );
      for (const p of batch) settle(p, { id: p.input.id });
    } catch (err) {
      for (const p of batch) settle(p, { err });
    }
  }

  /** Starts writes while a lane is free and submissions wait; each batch is of one job type. */
  function pump(): void {
    while (inFlight.size < SUBMIT_LANES) {
      queue = queue.filter((p) => !p.settled);
      if (queue.length === 0) return;
      const job = queue[0]!.input.job;
      const batch = queue.filter((p) => p.input.job === job).slice(0, MAX_SUBMIT_BATCH);
      const taken = new Set(batch);
      queue = queue.filter((p) => !taken.has(p));
      const n = ++writes;
      inFlight.set(n, Date.now());
      void write(n, batch).finally(() => {
        inFlight.delete(n);
        pump();
      });
    }
  }

  return {
    submit(input) {
      return new Promise<string>((resolve, reject) => {
        const p: Pending = { input: { ...input, id: randomUUID() }, resolve, reject, settled: false, timer: undefined as unknown as NodeJS.Timeout };
        // Still queued at the deadline (the writes ahead of it are slow): answered without being written.
        p.timer = setTimeout(() => {
          if (queue.includes(p)) {
            queue = queue.filter((x) => x !== p);
            settle(p, { err: new DatabaseTimeoutError('call', opts.deadlineMs, 'task submission waiting to be written') });
          }
        }, opts.deadlineMs);
        queue.push(p);
        pump();
      });
    },
    async submitAll(inputs) {
      const rows = inputs.map((i) => ({ ...i, id: randomUUID() }));
      if (rows.length === 0) return [];
      const n = ++writes;
      inFlight.set(n, Date.now());
      try {
        // A write of MAX_SUBMIT_BATCH rows gets the deadline of one submission; a larger one, a multiple of it (at most ten).
        await commit(n, rows, opts.deadlineMs * Math.min(10, Math.ceil(rows.length / MAX_SUBMIT_BATCH)));
        return rows.map((r) => r.id);
      } finally {
        inFlight.delete(n);
        pump();
      }
    },
    health() {
      const now = Date.now();
      const oldestInFlight = Math.min(...inFlight.values());
      const inFlightMs = inFlight.size > 0 ? now - oldestInFlight : 0;
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
