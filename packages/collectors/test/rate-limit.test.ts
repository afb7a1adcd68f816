import t from 'tap';
import type { Test } from 'tap';
import { blockBudget, createLimiter, createLocalBudgetStore, createPgBudgetStore, emptyBudget, settleSlots, takeSlots, BudgetBannedError, type BudgetSpec, type BudgetStore, floorToTimeframe, addPeriods, closedCutoff } from '@wombat/collectors';
import { createTestDatabase } from '@wombat/core/testing';

const SPEC: BudgetSpec = { limits: [{ limit: 10, windowMs: 1000 }], holdMs: 10_000, marginMs: 2, pollMs: 25 };

t.test('grants at most the limit, then waits until the oldest request leaves the window', async (t) => {
  const s = emptyBudget();
  const first = takeSlots(s, SPEC, 10, 0);
  t.equal(first.granted, 10);
  settleSlots(s, first.stamp, 10, 40);
  t.same(takeSlots(s, SPEC, 1, 500), { granted: 0, stamp: 0, waitMs: 542 }, 'answers at 40 + window 1000 + margin 2');
  t.equal(takeSlots(s, SPEC, 3, 1042).granted, 3);
});

t.test('a request in flight keeps its place until it is settled, dated by its answer', async (t) => {
  const s = emptyBudget();
  const spec = { ...SPEC, limits: [{ limit: 2, windowMs: 1000 }] };
  const a = takeSlots(s, spec, 2, 0);
  t.equal(a.granted, 2);
  t.same(takeSlots(s, spec, 1, 5000), { granted: 0, stamp: 0, waitMs: 25 }, 'in flight: look again soon');
  settleSlots(s, a.stamp, 1, 5100);
  t.equal(takeSlots(s, spec, 1, 5101).waitMs, 1001, 'the settled one leaves the window first');
  settleSlots(s, a.stamp, 1, 5200);
  t.equal(takeSlots(s, spec, 1, 5300).waitMs, 5100 + 1002 - 5300);
  t.equal(takeSlots(s, spec, 1, 6102).granted, 1);
});

t.test('a request whose process died frees its place after the hold', async (t) => {
  const s = emptyBudget();
  const spec = { ...SPEC, limits: [{ limit: 1, windowMs: 1000 }], holdMs: 3000 };
  t.equal(takeSlots(s, spec, 1, 0).granted, 1);
  t.equal(takeSlots(s, spec, 1, 3500).granted, 0);
  t.equal(takeSlots(s, spec, 1, 4002).granted, 1, 'counted as sent at grant + hold');
});

t.test('unused places are returned, and every limit of a budget binds', async (t) => {
  const s = emptyBudget();
  const spec: BudgetSpec = { limits: [{ limit: 10, windowMs: 1000 }, { limit: 15, windowMs: 60_000 }], holdMs: 1000, marginMs: 0 };
  const a = takeSlots(s, spec, 10, 0);
  settleSlots(s, a.stamp, 2, 1, true);
  settleSlots(s, a.stamp, 8, 10);
  const b = takeSlots(s, spec, 10, 1010);
  t.equal(b.granted, 7, 'the per-minute limit leaves 15 - 8');
  settleSlots(s, b.stamp, 7, 1020);
  t.equal(takeSlots(s, spec, 1, 30_000).waitMs, 60_010 - 30_000, 'waits for the minute window');
});

t.test('bans and pauses stop every request until they end, and never shorten', async (t) => {
  const s = emptyBudget();
  blockBudget(s, 'pause', 1000, 'upbit_429', '429', 0);
  blockBudget(s, 'pause', 200, 'upbit_429', 'shorter', 100);
  t.match(takeSlots(s, SPEC, 1, 500), { granted: 0, waitMs: 500, pause: { untilMs: 1000, code: 'upbit_429', message: '429' } });
  blockBudget(s, 'ban', 60_000, 'upbit_banned', 'banned', 600);
  t.match(takeSlots(s, SPEC, 1, 1000), { granted: 0, waitMs: 59_600, ban: { untilMs: 60_600, code: 'upbit_banned' } });
  t.equal(takeSlots(s, SPEC, 1, 60_600).granted, 1);
});

t.test('no window of a server counting arrivals ever sees more than the limit, whatever the latency', async (t) => {
  // Simulated time: each request waits for a grant, arrives after a random delay, answers after another.
  const s = emptyBudget();
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const arrivals: number[] = [];
  let now = 0;
  const clients = Array.from({ length: 4 }, () => ({ at: 0 }));
  while (now < 20_000) {
    const c = clients.reduce((a, b) => (a.at <= b.at ? a : b));
    now = c.at;
    const r = takeSlots(s, SPEC, 1, now);
    if (r.granted === 0) {
      c.at = now + r.waitMs;
      continue;
    }
    const arrive = now + rnd() * 80;
    const answer = arrive + rnd() * 80;
    arrivals.push(arrive);
    settleSlots(s, r.stamp, 1, answer);
    c.at = answer;
  }
  arrivals.sort((a, b) => a - b);
  let worst = 0;
  for (let i = 0, j = 0; i < arrivals.length; i++) {
    while (arrivals[i]! - arrivals[j]! >= 1000) j++;
    worst = Math.max(worst, i - j + 1);
  }
  t.ok(worst <= 10, `at most 10 arrivals in any second (saw ${worst})`);
  t.ok(arrivals.length >= 0.85 * 10 * 20, `uses the budget (${arrivals.length} requests in 20 s)`);
});

async function storeContract(t: Test, store: BudgetStore, name: string) {
  const spec: BudgetSpec = { limits: [{ limit: 3, windowMs: 1000 }], holdMs: 10_000, marginMs: 2, pollMs: 25 };
  const a = await store.take(name, spec, 5);
  t.equal(a.granted, 3, 'at most the limit');
  const b = await store.take(name, spec, 1);
  t.same([b.granted, b.waitMs], [0, 25], 'in flight: look again soon');
  await store.settle(name, a.stamp, 1, { unused: true });
  t.equal((await store.take(name, spec, 1)).granted, 1, 'an unused place comes back at once');
  await store.settle(name, a.stamp, 2);
  const c = await store.take(name, spec, 1);
  t.equal(c.granted, 0);
  t.ok(c.waitMs > 25 && c.waitMs <= 1002, `waits for the settled ones to leave the window (${c.waitMs} ms)`);
  await store.block(name, 'ban', 60_000, 'upbit_banned', 'Upbit banned this IP');
  const d = await store.take(name, spec, 1);
  t.match(d, { granted: 0, ban: { code: 'upbit_banned', message: 'Upbit banned this IP' } });
  t.ok(d.waitMs > 59_000);
  const other = await store.take(`${name}-other`, spec, 1);
  t.equal(other.granted, 1, 'budgets are independent');
}

t.test('the local store keeps the budget contract', async (t) => {
  await storeContract(t, createLocalBudgetStore(), 'upbit:local:candles');
});

t.test('the PostgreSQL store keeps the same contract, in one statement a call', async (t) => {
  const db = await createTestDatabase(t);
  await storeContract(t, createPgBudgetStore(db.db), 'upbit:pg:candles');
});

t.test('calls run by priority in a process, and a ban fails the waiting calls', async (t) => {
  const store = createLocalBudgetStore();
  const limiter = createLimiter({ store, maxConcurrent: 1 });
  t.teardown(() => limiter.stop());
  const budget = limiter.budget('host:example.com', { limits: [{ limit: 1, windowMs: 100 }], holdMs: 1000 });
  const order: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const call = (label: string, priority: 'high' | 'low') =>
    budget.schedule(async () => {
      order.push(label);
      if (label === 'low-1') await gate;
    }, { priority });
  const first = call('low-1', 'low');
  while (order.length === 0) await new Promise((r) => setTimeout(r, 5));
  const rest = [call('low-2', 'low'), call('low-3', 'low'), call('high', 'high')];
  await new Promise((r) => setTimeout(r, 50));
  open();
  await Promise.all([first, ...rest]);
  t.same(order, ['low-1', 'high', 'low-2', 'low-3'], 'the high-priority call overtakes the queued low ones');
  await budget.ban(60_000, 'blocked', 'example.com asked us to stop');
  const err = await budget.schedule(async () => 'sent').catch((e: unknown) => e);
  t.type(err, BudgetBannedError);
  t.match((err as Error).message, /example.com asked us to stop \(until \d{4}-/);
  const ac = new AbortController();
  const b2 = limiter.budget('host:slow.example', { limits: [{ limit: 1, windowMs: 60_000 }], holdMs: 1000 });
  await b2.schedule(async () => 1);
  const waiting = b2.schedule(async () => 2, { signal: ac.signal });
  ac.abort(new Error('cancelled'));
  await t.rejects(waiting, { message: 'cancelled' }, 'a cancelled call stops waiting at once');
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
