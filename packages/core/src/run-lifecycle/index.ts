/**
 * The run lifecycle: the only code that writes wombat.runs. Every change to a run
 * is one of these transitions; engine, worker and api call them.
 *
 * record (insertRunsAndSend, publishRun, recordOccurrences, recordChildRuns),
 * hold (recordOccurrences with state held), release (releaseHeldRuns),
 * start / progress / retry-pending / finish (applyAttemptUpdates, by workers),
 * skip / miss (recordOccurrences, recordUnpublishedRun), cancel (cancelRun),
 * requeue (requeueRun), lose (reconcileRuns), purge (purgeDeadLetters, deleteFinishedRuns),
 * a job run in the operator's own process (recordCliRunStart, recordCliRunProgress, recordCliRunEnd).
 */
export * from './states.ts';
export * from './record.ts';
export * from './release.ts';
export * from './attempts.ts';
export * from './operator.ts';
export * from './reconcile.ts';
export * from './cli.ts';
export * from './failure-report.ts';
