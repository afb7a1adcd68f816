import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { DatabaseTimeoutError, withDeadline } from '@wombat/core/platform';

t.test('settles as the work does when it is in time', async (t) => {
  t.equal(await withDeadline(sleep(5, 'done'), 1_000, 'quick work'), 'done');
  await t.rejects(withDeadline(Promise.reject(new Error('bad row')), 1_000, 'failing work'), /bad row/, 'a failure is passed through, not turned into a timeout');
});

t.test('rejects with DatabaseTimeoutError at the deadline, naming the work and the phase', async (t) => {
  const started = performance.now();
  const err = await withDeadline(new Promise(() => {}), 30, 'a call that hangs').catch((e: unknown) => e);
  const waited = performance.now() - started;
  t.ok(err instanceof DatabaseTimeoutError, String(err));
  t.ok(waited >= 25 && waited < 1_000, `at the deadline (${Math.round(waited)} ms)`);
  t.equal((err as DatabaseTimeoutError).phase, 'call', "the phase is 'call' unless the caller says");
  t.match((err as Error).message, /deadline of 30 ms passed \(a call that hangs\)/);
  const tx = await withDeadline(new Promise(() => {}), 10, 'a write', { phase: 'transaction' }).catch((e: unknown) => e);
  t.equal((tx as DatabaseTimeoutError).phase, 'transaction');
});

t.test('onAbandoned gets the work left behind, once, before the caller sees the rejection', async (t) => {
  let finish!: (v: string) => void;
  const work = new Promise<string>((resolve) => (finish = resolve));
  const seen: string[] = [];
  let late: Promise<string> | undefined;
  const outcome = withDeadline(work, 20, 'a slow write', {
    onAbandoned: (w) => {
      seen.push('abandoned');
      late = w;
    },
  }).catch(() => seen.push('rejected'));
  await outcome;
  t.same(seen, ['abandoned', 'rejected']);
  finish('committed late');
  t.equal(await late, 'committed late', 'the caller can tell how the abandoned work ended');
  await sleep(5);
  t.same(seen, ['abandoned', 'rejected'], 'called once');
});

t.test('onAbandoned is not called for work that ends in time, and no timer is left behind', async (t) => {
  let called = false;
  const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  await withDeadline(Promise.resolve(1), 60_000, 'instant work', { onAbandoned: () => (called = true) });
  t.equal(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, before, 'the deadline timer is cleared');
  t.notOk(called);
});

t.test('a deadline that is not a positive finite number means none', async (t) => {
  for (const ms of [0, -1, Number.NaN, Infinity]) t.equal(await withDeadline(sleep(15, 'ok'), ms, 'no deadline'), 'ok', `${ms}`);
});
