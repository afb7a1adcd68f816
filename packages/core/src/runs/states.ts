/**
 * The run states, defined once. The SQL check constraint (migrations 0005, 0015), the
 * TypeScript types and the api's enum all come from these lists; a test compares
 * the constraint in the database with RUN_STATES.
 *
 * - waiting: an occurrence of a schedule with prerequisites (after), recorded
 *   without a job until their runs for its period have completed (migration 0015);
 *   it ends skipped with reason dependency_failed or dependency_timeout otherwise.
 * - held: an occurrence recorded by overlap queue-one while another run of its
 *   schedule is unfinished; it has no pg-boss job until it is released. Also a
 *   backfill's child waiting for a slot, and a backfill paused after a failure.
 * - running (a backfill's parent, which never has a job): releasing its children.
 * - queued: its job is in pg-boss, no attempt is running.
 * - running: a worker runs an attempt.
 * - retrying: an attempt failed (or its worker was lost) and pg-boss will run the job again.
 * - completed, failed, cancelled: how a run with a job ended. A failed run not yet
 *   requeued is a dead letter; a run lost with its worker ends failed with error code worker_lost.
 * - skipped, missed: an occurrence recorded without a job (overlap, catch-up policy).
 */
export const RUN_STATES = ['waiting', 'held', 'queued', 'running', 'retrying', 'completed', 'failed', 'cancelled', 'skipped', 'missed'] as const;
export type RunState = (typeof RUN_STATES)[number];

/** Unfinished runs: what overlap policies count and the reconciler watches. */
export const ACTIVE_RUN_STATES = ['waiting', 'held', 'queued', 'running', 'retrying'] as const satisfies readonly RunState[];
export type ActiveRunState = (typeof ACTIVE_RUN_STATES)[number];

/**
 * Where a run's pg-boss job is, by the run's state: waiting in its queue (created, or retry
 * until its delay passes) while the run is queued or retrying, active with a worker while it
 * runs. Runs in other states have no job in a queue (held and waiting ones have none yet).
 * Queue depths come from the run roll-ups through this, never from counting the job table.
 */
export const QUEUE_SIDE_OF_RUN_STATE: Readonly<Partial<Record<string, 'waiting' | 'active'>>> = { queued: 'waiting', retrying: 'waiting', running: 'active' };

export const FINISHED_RUN_STATES = ['completed', 'failed', 'cancelled', 'skipped', 'missed'] as const satisfies readonly RunState[];
export type FinishedRunState = (typeof FINISHED_RUN_STATES)[number];

/** Why a waiting run ended skipped: the first word of its reason. */
export const DEPENDENCY_SKIP_REASONS = ['dependency_failed', 'dependency_timeout'] as const;
export type DependencySkipReason = (typeof DEPENDENCY_SKIP_REASONS)[number];

/** What created a run. */
export const RUN_TRIGGERS = ['schedule', 'manual', 'task', 'script', 'fanout', 'cli', 'backfill'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

/** Error code of a run whose worker died or whose pg-boss job ended without the worker saying how. */
export const WORKER_LOST = 'worker_lost';

export function isActiveRunState(state: string): state is ActiveRunState {
  return (ACTIVE_RUN_STATES as readonly string[]).includes(state);
}
