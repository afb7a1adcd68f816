import type { Kysely } from 'kysely';
import { type Logger, type LoopSupervisor, type PgBoss } from '@wombat/core/platform';
import { foldRunCounts, type QueuedSweep, reconcileRuns, releaseBackfills, releaseHeldRuns, releaseWaitingRuns } from '@wombat/core/runs';
import { type CoreTables } from '@wombat/core/tables';
import type { EngineClock } from './clock.ts';
import { purgeFinishedRuns, type RetentionOptions } from './housekeeping.ts';
import type { LastRunWriter } from './last-runs.ts';
import type { ScheduleMirror } from './schedule-mirror.ts';
import type { ScheduleSet } from './schedule-set.ts';

export interface HousekeepingOptions extends RetentionOptions {
  reconcileIntervalMs: number;
  heartbeatIntervalMs: number;
  heldRunCheckMs: number;
  runReconcileIntervalMs: number;
  jobHeartbeatSeconds?: number;
  runCountsFoldMs?: number;
  maintenanceIntervalMs: number;
}

export interface HousekeepingDeps {
  db: Kysely<CoreTables>;
  boss: PgBoss;
  log: Logger;
  loops: LoopSupervisor;
  options: HousekeepingOptions;
  clock: EngineClock;
  mirror: ScheduleMirror;
  schedules: ScheduleSet;
  lastRuns: LastRunWriter;
  /** Started and not stopping: a round that comes after the engine began to stop does nothing. */
  following(): boolean;
  /** Told of runs the reconciler failed for good because their worker was lost. */
  onRunsLost?: (runIds: string[]) => void;
}

const ENDED_JOBS_EVERY_MS = 30_000;

/** Deadline of a periodic round: two intervals, within 5 s..60 s. */
const roundDeadlineMs = (intervalMs: number) => Math.min(Math.max(2 * intervalMs, 5_000), 60_000);

/**
 * The engine's periodic loops, on the loop supervisor (a round that hangs is
 * abandoned and the next runs; a loop that cannot progress is a stall): the full
 * schedule re-read, the heartbeat, held-run and waiting-run release, backfill
 * release, run reconciliation, the run roll-ups' fold and retention. The
 * supervisor's stop() ends them.
 */
export function startHousekeeping(deps: HousekeepingDeps): { releaseWaitingNow(): void } {
  const { db, boss, log, options: o, clock } = deps;
  const every = (ms: number, name: string, fn: () => Promise<unknown>) =>
    deps.loops.every(name, ms, () => (deps.following() ? fn() : Promise.resolve()), { roundTimeoutMs: roundDeadlineMs(ms) });

  every(o.reconcileIntervalMs, 'reconcile', () => deps.mirror.reconcile());
  every(o.heartbeatIntervalMs, 'heartbeat', async () => {
    await deps.lastRuns.flush(); // retries a write that failed after its pass
    await clock.beat();
  });
  // Every round, whatever schedules this engine knows: a held run whose schedule was paused,
  // deleted or edited must still end skipped or run (the lookup is one index scan of
  // wombat.runs_active when nothing is held).
  every(o.heldRunCheckMs, 'held run release', async () => {
    for (const r of await releaseHeldRuns(db, boss)) {
      const fields = { scheduleId: r.scheduleId, schedule: deps.schedules.slots.get(r.scheduleId)?.s.name, runId: r.id };
      if (r.state === 'queued') log.info(fields, 'released held run (overlap queue-one)');
      else log.info({ ...fields, reason: r.reason }, 'held run skipped');
    }
  });
  // Backfills: children into their parent's free slots, progress, the parent's end. Row locks
  // (skip locked) share the parents among engines; all state is in the rows, so a restart resumes.
  every(o.heldRunCheckMs, 'backfill release', async () => {
    for (const b of await releaseBackfills(db, boss)) {
      if (b.released.length > 0) log.info({ runId: b.id, released: b.released.length }, 'released backfill runs');
      if (b.paused) log.warn({ runId: b.id }, 'backfill paused after a failure');
      if (b.state === 'completed' || b.state === 'failed') log.info({ runId: b.id, state: b.state }, 'backfill ended');
    }
  });
  // Waiting runs (dependencies): released within heldRunCheckMs of their prerequisites' completion,
  // and at once after a publication that recorded some (their prerequisites may be complete already).
  // The window is judged by this engine's clock, the one that decides when occurrences are due.
  const releaseWaiting = async () => {
    for (const r of await releaseWaitingRuns(db, boss, new Date(clock.now()))) {
      const fields = { scheduleId: r.scheduleId, schedule: r.schedule, runId: r.id, scheduledFor: r.scheduledFor.toISOString() };
      if (r.state === 'skipped') log.warn({ ...fields, reason: r.reason, prerequisite: r.prerequisite }, 'waiting run skipped');
      else log.info({ ...fields, state: r.state }, 'released waiting run: its prerequisites completed');
    }
  };
  every(o.heldRunCheckMs, 'waiting run release', releaseWaiting);
  every(o.runReconcileIntervalMs, 'run reconciliation', runReconciliation(deps));
  // The roll-ups' deltas grow by a few rows per statement that changes runs: folding them
  // often keeps what every read adds to the folded counts small.
  every(o.runCountsFoldMs ?? 5_000, 'run count fold', () => foldRunCounts(db));
  every(o.maintenanceIntervalMs, 'retention', () => purgeFinishedRuns(db, o));
  return {
    releaseWaitingNow: () =>
      void deps.loops.round('waiting run release after publication', () => (deps.following() ? releaseWaiting() : Promise.resolve()), { roundTimeoutMs: roundDeadlineMs(o.heldRunCheckMs) }),
  };
}

/**
 * One engine at a time (advisory lock) settles unfinished runs against pg-boss and
 * the worker registry. Worker heartbeats are judged from the database's return
 * from an outage, as this engine saw it: the first round after a gap of more than
 * three intervals (or this engine's first round: it cannot know what came before).
 */
function runReconciliation(deps: HousekeepingDeps): () => Promise<void> {
  const { log, options: o, clock } = deps;
  let lastRoundMs: number | undefined;
  let outageEndedAt = new Date(clock.databaseNow());
  // Queued runs are checked 500 a round, from where the last round stopped (a pass over a backlog of
  // 1,000,000 takes 2,000 rounds); running and retrying ones every round.
  const queued: QueuedSweep = { slice: 500, afterId: null };
  // Active jobs whose run already ended are looked for every 30 s (a scan of pg-boss's job
  // table): found within 45 s of their last job heartbeat, before pg-boss's own limit
  // (OUTAGE_GRACE_S + 30 s, 90 s by default) would fail and run them again.
  let endedSweptMs = -Infinity;
  return async () => {
    const startedMs = performance.now();
    if (lastRoundMs !== undefined && startedMs - lastRoundMs > Math.max(3 * o.runReconcileIntervalMs, 5_000)) {
      outageEndedAt = new Date(clock.databaseNow());
      log.info({ gapMs: Math.round(startedMs - lastRoundMs) }, 'database reachable again: worker heartbeats are judged from now');
    }
    const endedJobs = startedMs - endedSweptMs >= ENDED_JOBS_EVERY_MS;
    if (endedJobs) endedSweptMs = startedMs;
    const r = await reconcileRuns(deps.db, deps.boss, { outageEndedAt, queued, endedJobs, ...(o.jobHeartbeatSeconds !== undefined ? { jobHeartbeatSeconds: o.jobHeartbeatSeconds } : {}) });
    lastRoundMs = startedMs;
    if (!r) return; // another engine holds the lock
    for (const id of r.lost) log.warn({ runId: id }, 'run lost: failed with worker_lost');
    if (r.lost.length > 0) deps.onRunsLost?.(r.lost);
    for (const id of r.retrying) log.warn({ runId: id }, 'run attempt lost: retrying');
    if (r.settled.length > 0) log.info({ runIds: r.settled }, 'runs took the outcome pg-boss recorded for their jobs');
    if (r.jobsSettled.length > 0) log.info({ runIds: r.jobsSettled }, 'jobs settled in pg-boss as their runs ended (the worker could not settle them)');
  };
}
