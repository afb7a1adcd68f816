import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { cancelRuns, cancelRunsInput, insertRunsAndSend } from '@wombat/core/runs';
import { createTestDatabase } from '@wombat/core/testing';
import { getRun, jobStateEventually, startTestWorker, waitForRun } from './fixtures/harness.ts';

/** Cancelling every running run of a job type at once: the workers holding them stop, and pg-boss agrees. */
t.test('cancelRuns with state running aborts the handlers and leaves runs and jobs cancelled', async (t) => {
  const tdb = await createTestDatabase(t);
  const { boss, worker } = await startTestWorker(t, tdb, { queues: ['canary'], batchSize: 3 });
  // Sent together, so that the worker's one fetch loop takes all three in one batch.
  const ids = await tdb.db.transaction().execute((trx) =>
    insertRunsAndSend(trx, boss, Array.from({ length: 3 }, () => ({ job: 'canary' as const, params: { sleep_ms: 30_000 }, trigger: 'task' as const }))),
  );
  for (const id of ids) await waitForRun(tdb, id, (r) => r.state === 'running');
  const { cancelled } = await cancelRuns(tdb.db, boss, cancelRunsInput({ job: 'canary', states: ['running'] }));
  t.equal(cancelled, 3);
  const deadline = Date.now() + 5_000;
  while (worker.running().length > 0 && Date.now() < deadline) await sleep(20);
  t.same(worker.running(), [], 'every handler stopped');
  await sleep(500); // a late write from a stopped attempt must not change the outcome
  for (const id of ids) {
    t.equal((await getRun(tdb, id)).state, 'cancelled');
    t.equal(await jobStateEventually(boss, 'canary', id, 'cancelled'), 'cancelled', 'pg-boss agrees');
  }
});
