import t from 'tap';
import { backoffMs, type BackoffOptions } from '@wombat/core/platform';

const steps = (opts: BackoffOptions, attempts: number) => Array.from({ length: attempts }, (_, i) => backoffMs(i + 1, opts));

t.test('without jitter the delay doubles from baseMs and stops at maxMs', async (t) => {
  t.same(steps({ baseMs: 100, maxMs: 1_000, jitter: 'none' }, 6), [100, 200, 400, 800, 1_000, 1_000]);
  t.same(steps({ baseMs: 500, maxMs: 2_000, jitter: 'none' }, 4), [500, 1_000, 2_000, 2_000]);
  t.equal(backoffMs(1, { baseMs: 5_000, maxMs: 1_000, jitter: 'none' }), 1_000, 'the cap wins over a larger base');
});

t.test('a huge attempt number stays at the cap, and a zero base stays zero (no overflow, no NaN)', async (t) => {
  t.equal(backoffMs(10_000, { baseMs: 100, maxMs: 5_000, jitter: 'none' }), 5_000);
  t.equal(backoffMs(10_000, { baseMs: 0, maxMs: 5_000, jitter: 'none' }), 0);
  t.equal(backoffMs(10_000, { baseMs: 100, maxMs: 5_000, jitter: 'full', random: () => 0.5 }), 2_500);
});

t.test('full jitter is uniform in [0, ceiling): random 0 gives 0, random near 1 gives nearly the ceiling', async (t) => {
  const at = (r: number, attempt = 3) => backoffMs(attempt, { baseMs: 100, maxMs: 10_000, jitter: 'full', random: () => r });
  t.equal(at(0), 0);
  t.equal(at(0.25), 100);
  t.ok(at(0.999_999) < 400 && at(0.999_999) > 399.99);
  t.equal(at(0.5, 20), 5_000, 'jitter applies below the capped ceiling');
});

t.test('equal jitter is uniform in [ceiling/2, ceiling)', async (t) => {
  const at = (r: number, attempt = 3) => backoffMs(attempt, { baseMs: 100, maxMs: 10_000, jitter: 'equal', random: () => r });
  t.equal(at(0), 200);
  t.equal(at(0.5), 300);
  t.ok(at(0.999_999) < 400 && at(0.999_999) > 399.99);
  t.equal(at(0, 20), 5_000);
});

t.test('Math.random is the default source; every delay lands in its range', async (t) => {
  for (let attempt = 1; attempt <= 12; attempt++) {
    const ceiling = Math.min(3_000, 10 * 2 ** (attempt - 1));
    const full = backoffMs(attempt, { baseMs: 10, maxMs: 3_000, jitter: 'full' });
    const equal = backoffMs(attempt, { baseMs: 10, maxMs: 3_000, jitter: 'equal' });
    t.ok(full >= 0 && full < ceiling, `full ${full} in [0, ${ceiling})`);
    t.ok(equal >= ceiling / 2 && equal < ceiling, `equal ${equal} in [${ceiling / 2}, ${ceiling})`);
  }
});

t.test('bad arguments are refused with a message naming what to fix', async (t) => {
  const ok: BackoffOptions = { baseMs: 100, maxMs: 1_000, jitter: 'none' };
  t.throws(() => backoffMs(0, ok), /attempt must be an integer of at least 1, not 0/);
  t.throws(() => backoffMs(1.5, ok), /attempt must be an integer of at least 1, not 1.5/);
  t.throws(() => backoffMs(1, { ...ok, baseMs: -1 }), /baseMs must be a finite number of at least 0, not -1/);
  t.throws(() => backoffMs(1, { ...ok, baseMs: Number.NaN }), /baseMs must be a finite number/);
  t.throws(() => backoffMs(1, { ...ok, maxMs: Infinity }), /maxMs must be a finite number of at least 0, not Infinity/);
  t.throws(() => backoffMs(1, { ...ok, jitter: 'half' as never }), /jitter must be 'none', 'full' or 'equal', not half/);
  t.throws(() => backoffMs(1, { ...ok, jitter: 'full', random: () => 1 }), /random\(\) must return a number in \[0, 1\), not 1/);
  t.throws(() => backoffMs(-3, ok), RangeError);
  t.equal(backoffMs(1, ok), 100);
});
