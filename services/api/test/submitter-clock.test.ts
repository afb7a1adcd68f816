// The submitter's deadline is an instant on the database's clock: an api host whose clock
// disagrees with the database's still gets its submissions written.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseTimeoutError, startBoss } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { createSubmitter } from '../src/submitter.ts';

const tdb = await createTestDatabase(t);
const boss = await startBoss({ url: tdb.url, role: 'producer', log: tdb.log });
t.teardown(() => boss.stop({ graceful: false, close: true }));

/** Runs `fn` with this process's wall clock `skewMs` off (what a host with a wrong clock reads). */
async function withSkewedClock<T>(skewMs: () => number, fn: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  Date.now = () => realNow() + skewMs();
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

async function stored(id: string): Promise<boolean> {
  return (await tdb.db.selectFrom('wombat.runs').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
}

t.test('an api host 10 s behind the database: submissions are written and answered', async (t) => {
  await withSkewedClock(
    () => -10_000,
    async () => {
      const submitter = createSubmitter(tdb.db, boss, { deadlineMs: 2_000, stuckAfterMs: 30_000, log: tdb.log });
      await sleep(300); // the database's clock is read when the submitter starts
      const id = await submitter.submit({ job: 'canary', params: {}, trigger: 'task' });
      t.ok(await stored(id), 'the run is stored');
      t.ok(await boss.getJobById('canary', id), 'and its job');
    },
  );
});

t.test('a clock that jumps after start costs one refused write, then the offset is read again', async (t) => {
  let skew = 0;
  await withSkewedClock(
    () => skew,
    async () => {
      const submitter = createSubmitter(tdb.db, boss, { deadlineMs: 2_000, stuckAfterMs: 30_000, log: tdb.log });
      await sleep(300);
      t.ok(await stored(await submitter.submit({ job: 'canary', params: {}, trigger: 'task' })), 'written while the clocks agree');
      skew = -10_000;
      const refused = await submitter.submit({ job: 'canary', params: {}, trigger: 'task' }).then(
        () => undefined,
        (err: unknown) => err,
      );
      t.ok(refused instanceof DatabaseTimeoutError, 'the first write after the jump is refused as past its deadline (answered 503), not written late');
      const before = await tdb.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs`;
      await sleep(300);
      const id = await submitter.submit({ job: 'canary', params: {}, trigger: 'task' });
      t.ok(await stored(id), 'the next one is written, with the offset read again');
      const after = await tdb.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs`;
      t.equal(after[0]!.n, before[0]!.n + 1, 'the refused write left nothing behind');
    },
  );
});
