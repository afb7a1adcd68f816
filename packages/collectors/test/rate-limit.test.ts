import t from 'tap';
import { SlidingWindow, floorToTimeframe, addPeriods, closedCutoff } from '@wombat/collectors';

function take(w: SlidingWindow, now: number, latencyMs = 0): number {
  const r = w.tryAcquire(now);
  if (!r.granted) return r.waitMs ?? -1;
  w.settle(r.ticket, now + latencyMs);
  return 0;
}

t.test('a sliding window grants at most limit requests in any window', async (t) => {
  const w = new SlidingWindow({ limit: 10, windowMs: 1000, marginMs: 10 });
  for (let i = 0; i < 10; i++) t.equal(take(w, 1000 + i), 0, `request ${i} starts at once`);
  t.equal(take(w, 1010), 1000 + 1000 + 10 - 1010, 'the 11th waits until the first leaves the window plus margin');
  t.equal(take(w, 2010), 0);
  t.equal(take(w, 2010), 1, 'then one slot per released grant');
});

t.test('a slot is dated by its answer: requests in flight hold their slot until they settle', async (t) => {
  const w = new SlidingWindow({ limit: 2, windowMs: 1000, marginMs: 0 });
  const a = w.tryAcquire(0);
  const b = w.tryAcquire(0);
  t.ok(a.granted && b.granted);
  t.same(w.tryAcquire(5000), { granted: false, waitMs: undefined }, 'both slots in flight: wait for an answer');
  if (a.granted) w.settle(a.ticket, 5000);
  t.same(w.tryAcquire(5500), { granted: false, waitMs: 500 }, 'the answered slot frees a window after its answer');
  t.ok(w.tryAcquire(6000).granted);
});

t.test('steady use reaches the limit less the latency and margin', async (t) => {
  const w = new SlidingWindow({ limit: 10, windowMs: 1000, marginMs: 2 });
  let now = 0;
  let granted = 0;
  while (now < 10_000) {
    const wait = take(w, now, 5);
    if (wait === 0) granted++;
    else now += wait;
  }
  t.ok(granted >= 99 && granted <= 100, `${granted} grants in 10 s at 10/s with 5 ms latency`);
});

t.test('a lower server count books the difference as foreign use', async (t) => {
  const w = new SlidingWindow({ limit: 10, windowMs: 1000, marginMs: 0 });
  take(w, 0);
  t.equal(w.remaining(0), 9);
  w.observeRemaining(4, 0);
  t.equal(w.remaining(0), 4);
  w.observeRemaining(8, 0);
  t.equal(w.remaining(0), 4, 'a higher server count never frees slots we booked');
});

t.test('a pause blocks every request until it ends', async (t) => {
  const w = new SlidingWindow({ limit: 10, windowMs: 1000 });
  w.pause(0, 1500);
  t.equal(take(w, 100), 1400);
  t.equal(take(w, 1500), 0);
});

t.test('timeframes floor to their period start in UTC', async (t) => {
  const at = new Date('2026-06-03T13:47:12.345Z'); // a Wednesday
  t.equal(floorToTimeframe('1m', at).toISOString(), '2026-06-03T13:47:00.000Z');
  t.equal(floorToTimeframe('15m', at).toISOString(), '2026-06-03T13:45:00.000Z');
  t.equal(floorToTimeframe('4H', at).toISOString(), '2026-06-03T12:00:00.000Z');
  t.equal(floorToTimeframe('1D', at).toISOString(), '2026-06-03T00:00:00.000Z');
  t.equal(floorToTimeframe('1W', at).toISOString(), '2026-06-01T00:00:00.000Z', 'weeks start on Monday');
  t.equal(floorToTimeframe('1M', at).toISOString(), '2026-06-01T00:00:00.000Z');
  t.equal(addPeriods('1M', new Date('2026-01-01T00:00:00Z'), 13).toISOString(), '2027-02-01T00:00:00.000Z');
  t.equal(closedCutoff('1H', at).toISOString(), '2026-06-03T13:00:00.000Z', 'the open hour is not closed');
});
