import { AppError, PermanentError, ValidationError, serializeError, withDeadline, type Job, type Logger } from '@wombat/core/platform';
import { checkJobParams, type JobType } from '@wombat/core/jobs';
import type { JobResult } from 'pg-boss';
import type { ExecutionLog } from './execution-log.ts';
import type { FlushOutcome, HistoryWriter } from './history.ts';
import type { HandlerDeps, JobContext, JobHandler, JobHandlers } from './jobs/types.ts';

/** A job this process is running, by run id: how to cancel it or hand it back. */
export interface ActiveJob {
  cancel: AbortController;
  queue: JobType;
}

export interface ExecuteDeps {
  handlers: JobHandlers;
  handlerDeps: HandlerDeps;
  history: HistoryWriter;
  active: Map<string, ActiveJob>;
  /** Aborted when the worker stops and running jobs must be handed back. */
  shutdown: AbortSignal;
  /** Jobs stopped by the worker's shutdown, by run id: handed back (attempt not spent) once pg-boss has settled them. */
  handedBack: Map<string, { queue: JobType; attempts: number }>;
  progressIntervalMs: number;
  /** This process in the worker registry: recorded on each run it starts. */
  workerId?: string;
  /**
   * How long a job's final history write may hold up its settlement in pg-boss. The write itself is
   * retried until it lands; past this wait the job is settled anyway, so a database blip never turns
   * a success into a retry (the reconciler settles the run from pg-boss if this worker dies first).
   */
  historyWaitMs?: number;
  /**
   * The job's retry limit, asked only when an attempt fails or is handed back (jobs are fetched
   * without pg-boss's metadata, which a batch of trivial jobs would spend most of its time parsing).
   */
  retryLimit: (queue: JobType, id: string) => Promise<number>;
  /** Where handler starts and ends are audited (WORKER_EXECUTION_LOG); unset: nowhere. */
  executions?: ExecutionLog;
  /** Told of each run that failed for good (its last attempt, or a failure no retry can help), with the error thrown. */
  onRunFailed?: (failure: { job: JobType; runId: string; attempt: number; error: unknown }) => void;
  log: Logger;
}

let lastIsoMs = 0;
let lastIso = '';
/** The time now as ISO text; a batch of jobs finishing in the same millisecond shares one string. */
function nowIso(): string {
  const ms = Date.now();
  if (ms !== lastIsoMs) {
    lastIsoMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

const waits = new WeakMap<Promise<unknown>, { ms: number; since: number; wait: Promise<boolean> }>();
/**
 * Waits for `p` at most `ms`; true when it settled in time. Never throws. The jobs of a batch wait
 * on the same history flush at the same moment, so they share one timer rather than one each.
 */
function landed(p: Promise<unknown>, ms: number): Promise<boolean> {
  const now = performance.now();
  const shared = waits.get(p);
  if (shared && shared.ms === ms && now - shared.since < 10) return shared.wait;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const wait = Promise.race([p.then(() => true, () => true), timeout]).finally(() => clearTimeout(timer));
  waits.set(p, { ms, since: now, wait });
  return wait;
}

/**
 * One signal, aborted with the reason of the first of `sources` to abort; `release` detaches it
 * once the job is over. AbortSignal.any would do the same, but every source keeps track of its
 * composites until they are collected, and the worker's shutdown signal lives as long as the
 * process: a burst of jobs then leaves tens of MiB resident.
 */
function firstOf(sources: AbortSignal[]): { signal: AbortSignal; release: () => void } {
  const first = new AbortController();
  const detach: (() => void)[] = [];
  for (const source of sources) {
    if (source.aborted) {
      first.abort(source.reason);
      break;
    }
    const onAbort = () => first.abort(source.reason);
    source.addEventListener('abort', onAbort, { once: true });
    detach.push(() => source.removeEventListener('abort', onAbort));
  }
  return { signal: first.signal, release: () => detach.forEach((d) => d()) };
}

/** Whether this attempt was the job's last: from pg-boss's record, read only on this path; an unreadable record counts as not the last (pg-boss decides, and the reconciler settles the run). */
async function lastAttempt(queue: JobType, job: Job<object>, deps: ExecuteDeps): Promise<boolean> {
  try {
    return job.retryCount >= (await withDeadline(deps.retryLimit(queue, job.id), 5_000, 'reading the job\'s retry limit'));
  } catch (err) {
    deps.log.warn({ err, job: queue, runId: job.id }, 'could not read the job\'s retry limit; recording the attempt as retrying');
    return false;
  }
}

/**
 * Runs one job and records its outcome in the run history; resolves with pg-boss's verdict.
 *
 * - success: run 'completed' with result; pg-boss completes the job.
 * - failure with retries left: run 'retrying' with the error; pg-boss retries with backoff.
 * - final failure: run 'failed' (a dead letter) with the error and finished_at.
 * - invalid params or a PermanentError: run 'failed' at once; pg-boss gets 'deadletter', which fails
 *   the job terminally without using its retries.
 * - cancelled (the api set the run 'cancelled' and sent NOTIFY, or the run was already 'cancelled'
 *   when the attempt started): the run is left as the api wrote it; pg-boss gets 'deadletter' so
 *   the job does not run again.
 * - worker stopping: nothing is written; pg-boss fails the job, and once the batch is settled the
 *   worker hands it back (core's handBackAttempt: queued again, its attempt not spent), so a
 *   restart never costs a retry or turns into a dead letter.
 * - completed before (a retry of a run an earlier attempt completed): the handler does not run;
 *   pg-boss completes the job, agreeing with the run.
 * - superseded (the attempt lost its claim: the reconciler or pg-boss ended it, or a write of it
 *   was refused): the handler is aborted; what the attempt writes is refused by the lifecycle and
 *   kept as a superseded attempt, never as the run's outcome.
 *
 * The final history write is awaited before pg-boss settles the job (up to historyWaitMs; it is
 * retried until it lands): a run never reads 'running' after its job completed while Postgres
 * answers, and a body that succeeded is completed in pg-boss even when its bookkeeping is slow.
 */
export async function executeJob(queue: JobType, job: Job<object>, deps: ExecuteDeps): Promise<JobResult> {
  const attempts = job.retryCount + 1;
  const attemptStartedAt = nowIso();
  const id = job.id;
  const waitMs = deps.historyWaitMs ?? 5_000;
  const workerId = deps.workerId;
  // Every write names this worker: the lifecycle refuses writes of an attempt that is no longer this worker's.
  const w = workerId ? { workerId } : {};
  // The health probe of the whole path: one history row (queued -> completed), nothing to abort.
  // A retry takes the ordinary path, whose 'running' write finds a run an earlier attempt completed.
  if (queue === 'canary' && job.retryCount === 0 && Object.keys(job.data ?? {}).length === 0) {
    deps.executions?.start({ runId: id, attempt: attempts, job: queue });
    deps.executions?.end({ runId: id, attempt: attempts, job: queue, outcome: 'completed' });
    await landed(deps.history.write({ id, attempts, ...w, state: 'completed', attemptStartedAt, result: {}, finishedAt: attemptStartedAt }), waitMs);
    return { id, status: 'completed' };
  }
  const endLevel = queue === 'canary' ? 'debug' : 'info';
  // The 'running' write goes in the next batched flush, which also reports a run the api cancelled
  // before this attempt started (a cancel between pg-boss handing the job over and this point,
  // which its NOTIFY could not reach): such a job is aborted as soon as the flush returns.
  const cancel = new AbortController();
  const superseded = new AbortController();
  /** Aborts the handler when a write of this attempt comes back refused as superseded. */
  const fenced = (p: Promise<FlushOutcome>) =>
    p.then(
      (outcome) => {
        if (outcome.superseded.has(id)) superseded.abort(new AppError('superseded', 'this attempt no longer holds its job (ended by the reconciler or pg-boss, or run elsewhere)'));
      },
      () => {},
    );
  let completedBefore = false;
  const started = deps.history.write({ id, attempts, ...w, state: 'running', attemptStartedAt, progress: 0, progressMessage: null }).then(
    (outcome) => {
      if (outcome.cancelled.has(id)) cancel.abort(new Error('cancelled before it started'));
      if (outcome.superseded.has(id)) superseded.abort(new AppError('superseded', 'this attempt no longer holds its job'));
      completedBefore = outcome.finished.has(id);
    },
    () => {},
  );
  // A retry waits for its 'running' write before the handler starts: an earlier attempt may have
  // completed the run after all (its result landed once the database came back, and pg-boss had
  // expired the job meanwhile). Then the job is settled as the run says, and nothing runs twice.
  // First attempts do not wait: no earlier attempt can have completed them.
  if (job.retryCount > 0) {
    await landed(started, waitMs);
    if (completedBefore) {
      deps.log.warn({ job: queue, runId: id, attempt: attempts }, 'run already completed by an earlier attempt; settling the job without running it again');
      return { id, status: 'completed', output: { completedBefore: true } };
    }
  }

  const startedMs = performance.now();
  const check = checkJobParams(queue, job.data);
  if (!check.ok) {
    const err = new ValidationError(check.problems.map((p) => p.replace(/^params/, `params of ${queue}`)));
    await landed(deps.history.write({ id, attempts, ...w, state: 'failed', attemptStartedAt, error: serializeError(err), finishedAt: nowIso() }), waitMs);
    deps.log.info({ job: queue, runId: id, attempt: attempts, state: 'failed', durationMs: 0, err }, 'run ended');
    deps.onRunFailed?.({ job: queue, runId: id, attempt: attempts, error: err });
    return { id, status: 'deadletter', output: { error: err.message } };
  }

  const deadline = new AbortController();
  const timeoutMs = job.expireInSeconds * 1000;
  const timer = setTimeout(() => deadline.abort(new AppError('timeout', `job ran past its timeout of ${job.expireInSeconds} s`)), timeoutMs);
  const { signal, release } = firstOf([job.signal, cancel.signal, superseded.signal, deadline.signal, deps.shutdown]);
  deps.active.set(id, { cancel, queue });
  const log = deps.log.child({ job: queue, runId: id, attempt: attempts });
  const progress = createProgress(id, attempts, w, deps, fenced);

  const durationMs = () => Math.round(performance.now() - startedMs);
  // The body's outcome; bookkeeping happens after the try, so that a failed history write can never
  // turn a body that succeeded into a failure (and a retry).
  let outcome: { ok: true; result: unknown } | { ok: false; thrown: unknown };
  try {
    const handler = deps.handlers[queue] as JobHandler<JobType>;
    const ctx = { runId: id, job: queue, params: check.value, attempt: attempts, signal, progress: progress.report, log } as JobContext<JobType>;
    deps.executions?.start({ runId: id, attempt: attempts, job: queue });
    outcome = { ok: true, result: await handler(ctx, deps.handlerDeps) };
  } catch (thrown) {
    outcome = { ok: false, thrown };
  } finally {
    clearTimeout(timer);
    release();
    deps.active.delete(id);
    progress.stop();
  }
  deps.executions?.end({ runId: id, attempt: attempts, job: queue, outcome: outcome.ok ? 'completed' : signal.aborted ? 'aborted' : 'failed' });
  // A cancel that arrived through the 'running' write's report: wait for that write only briefly.
  await landed(started, waitMs);
  if (cancel.signal.aborted) {
    log.info({ state: 'cancelled', durationMs: durationMs() }, 'run ended');
    return { id, status: 'deadletter', output: { cancelled: true } };
  }
  if (outcome.ok) {
    const result = outcome.result ?? {};
    const done = deps.history.write({ id, attempts, ...w, state: 'completed', attemptStartedAt, result, finishedAt: nowIso() });
    await landed(fenced(done), waitMs);
    if (superseded.signal.aborted) {
      log.warn({ durationMs: durationMs() }, 'attempt superseded: its result is kept apart, not as the run\'s outcome');
      return { id, status: 'failed', output: serializeError(superseded.signal.reason) };
    }
    log[endLevel]({ state: 'completed', durationMs: durationMs() }, 'run ended');
    return { id, status: 'completed', output: result };
  }
  {
    const thrown = outcome.thrown;
    if (deps.shutdown.aborted && !deadline.signal.aborted && !superseded.signal.aborted && !job.signal.aborted) {
      // Settled as failed by pg-boss, then handed back by the worker once the batch is settled.
      deps.handedBack.set(id, { queue, attempts });
      log.info({ durationMs: durationMs() }, 'job stopped by the worker\'s shutdown; handing it back');
      return { id, status: 'failed', output: serializeError(new AppError('worker_stopped', 'the worker stopped while the job ran; it runs again')) };
    }
    // pg-boss runs a timer of its own for the same deadline and aborts job.signal: whichever fires
    // first, a job stopped at its deadline failed by timeout.
    const timedOut = deadline.signal.aborted || (job.signal.aborted && performance.now() - startedMs >= timeoutMs - 50);
    const lostClaim = !timedOut && (job.signal.aborted || superseded.signal.aborted);
    const err = timedOut
      ? new AppError('timeout', `job ran past its timeout of ${job.expireInSeconds} s`, { cause: thrown })
      : lostClaim
        ? new AppError('superseded', 'this attempt no longer holds its job (ended by the reconciler or pg-boss, or run elsewhere); its outcome is kept apart', { cause: thrown })
        : thrown;
    const final = err instanceof PermanentError || err instanceof ValidationError || (await lastAttempt(queue, job, deps));
    const error = serializeError(err);
    const state = final ? 'failed' : 'retrying';
    await landed(deps.history.write({ id, attempts, ...w, state, attemptStartedAt, error, ...(final ? { finishedAt: nowIso() } : {}) }), waitMs);
    log.warn({ err, final, state, durationMs: durationMs() }, 'run ended');
    // An attempt that lost its claim is not the run's outcome: whoever ended it reports that.
    if (final && !lostClaim) deps.onRunFailed?.({ job: queue, runId: id, attempt: attempts, error: err });
    const permanent = err instanceof PermanentError || err instanceof ValidationError;
    return { id, status: permanent ? 'deadletter' : 'failed', output: error };
  }
}

/** Throttled progress: the first report is written at once, then at most one per interval (the latest wins). */
function createProgress(
  id: string,
  attempts: number,
  w: { workerId?: string },
  deps: ExecuteDeps,
  fenced: (p: Promise<FlushOutcome>) => Promise<void>,
): { report: (fraction: number, message?: string) => void; stop: () => void } {
  let lastAt = 0;
  let trailing: NodeJS.Timeout | undefined;
  let latest: { progress: number; progressMessage: string | null } | undefined;
  let stopped = false;
  const write = () => {
    trailing = undefined;
    if (!latest || stopped) return;
    lastAt = performance.now();
    void fenced(deps.history.write({ id, attempts, ...w, ...latest }));
    latest = undefined;
  };
  return {
    report(fraction, message) {
      if (stopped) return;
      const progress = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
      latest = { progress, progressMessage: message ?? null };
      const wait = deps.progressIntervalMs - (performance.now() - lastAt);
      if (wait <= 0) write();
      else trailing ??= setTimeout(write, wait);
    },
    stop() {
      stopped = true;
      if (trailing) clearTimeout(trailing);
    },
  };
}
