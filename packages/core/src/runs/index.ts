/**
 * Runs: the run lifecycle, the only code that writes wombat.runs (and
 * wombat.superseded_attempts). Every change to a run is one of these transitions;
 * engine, worker, api and CLI call them. Its DDL is migrations/, its states are
 * states.ts. Import as `@wombat/core/runs`.
 *
 * record (insertRunsAndSend, publishRun, recordOccurrences, recordChildRuns, triggerSchedule),
 * hold (recordOccurrences with state held or waiting), release (releaseHeldRuns, releaseWaitingRuns),
 * backfill (backfillSchedule, releaseBackfills, resumeBackfill; planned by planBackfill, with prerequisites),
 * start / progress / retry-pending / finish (applyAttemptUpdates, by workers),
 * skip / miss (recordOccurrences, recordUnpublishedRun), cancel (cancelRun, cancelRuns),
 * requeue (requeueRun), lose (reconcileRuns), purge (purgeDeadLetters, deleteFinishedRuns),
 * a job run in the operator's own process (recordCliRunStart, recordCliRunProgress, recordCliRunEnd).
 *
 * Runs stand above schedules: a run belongs to a schedule (schedule_id), takes its
 * job settings from it (scheduleJobOptions) and is released by its current definition,
 * while a schedule needs nothing of its runs.
 */
export * from './tables.ts';
export * from './states.ts';
export * from './record.ts';
export * from './release.ts';
export * from './backfill-plan.ts';
export * from './backfill.ts';
export * from './release-waiting.ts';
export * from './attempts.ts';
export * from './operator.ts';
export * from './bulk-cancel.ts';
export * from './reconcile.ts';
export * from './job-indexes.ts';
export * from './cli.ts';
export * from './failure-report.ts';
export * from './run-counts.ts';
