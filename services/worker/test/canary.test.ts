import t from 'tap';
import { publishRun } from '@wombat/core';
import { createTestDatabase } from '@wombat/core/testing';
import { startTestWorker, waitForRun } from './fixtures/harness.ts';

const tdb = await createTestDatabase(t);
const { boss } = await startTestWorker(t, tdb, { queues: ['canary'] });

t.test('a steered canary sleeps, then fails retryably (fail: true) or for good (fail: "permanent")', async (t) => {
  const slept = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 200 }, trigger: 'manual' });
  const ok = await waitForRun(tdb, slept, (r) => r.state === 'completed');
  t.match(ok.result, { slept_ms: 200 });
  t.ok(new Date(ok.finished_at!).getTime() - new Date(ok.started_at!).getTime() >= 190, 'it slept before completing');

  const retryable = await publishRun(tdb.db, boss, { job: 'canary', params: { fail: true }, trigger: 'manual', retryLimit: 1, retryDelaySeconds: 0 });
  const r1 = await waitForRun(tdb, retryable, (r) => r.state === 'failed', 30_000);
  t.equal(r1.attempts, 2, 'retried once, then failed');
  t.match(r1.error, { code: 'canary_failed' });

  const permanent = await publishRun(tdb.db, boss, { job: 'canary', params: { fail: 'permanent' }, trigger: 'manual', retryLimit: 3 });
  const r2 = await waitForRun(tdb, permanent, (r) => r.state === 'failed');
  t.equal(r2.attempts, 1, 'no retries');
  t.match(r2.error, { name: 'PermanentError', code: 'canary_failed' });
});

t.test('a sleeping canary honours cancellation', async (t) => {
  const id = await publishRun(tdb.db, boss, { job: 'canary', params: { sleep_ms: 600_000 }, trigger: 'manual' });
  await waitForRun(tdb, id, (r) => r.state === 'running');
  await tdb.db.updateTable('wombat.runs').set({ state: 'cancelled' }).where('id', '=', id).execute();
  await tdb.sql.notify('wombat_run_cancel', id);
  let state: string | undefined = 'active';
  for (let i = 0; i < 300 && state === 'active'; i++) {
    await new Promise((r) => setTimeout(r, 50));
    state = (await boss.getJobById('canary', id))?.state;
  }
  t.not(state, 'active', 'the ten-minute sleep was cut short');
  t.equal((await tdb.db.selectFrom('wombat.runs').select('state').where('id', '=', id).executeTakeFirstOrThrow()).state, 'cancelled');
});
