import t from 'tap';
import type { JobParams } from '@wombat/core/jobs';
import { valueZone, volumeZoneBreakout } from '../src/backtest/volume-zone.ts';
import { runBacktest, type Candle, type CollectorsPort } from '../src/index.ts';

/**
 * volume-zone-breakout against a series worked out by hand, and against a reference written
 * here from the definition alone (services/worker/README.md, Backtest), on many random series.
 */
const DAY_MS = 86_400_000;
const T0 = Date.UTC(2024, 0, 1);
const bar = (i: number, high: number, low: number, close: number, volume: number): Candle => ({
  time: new Date(T0 + i * DAY_MS),
  open: close,
  high,
  low,
  close,
  volume,
  quoteVolume: close * volume,
});

// lookback 4, zones 2, volumeWindow 3, volumeMultiplier 1.5, stopPct 10.
const OPTIONS = { lookback: 4, zones: 2, volumeWindow: 3, volumeMultiplier: 1.5, stopPct: 10 };
const HAND = [
  bar(0, 10.5, 9.5, 10, 100),
  bar(1, 10.5, 9.5, 10, 100),
  bar(2, 11, 10, 10.5, 100),
  bar(3, 11.5, 10, 11, 150),
  // t=4, window c0..c3: lo 9.5, hi 11.5, two zones of width 1: z0 [9.5, 10.5), z1 [10.5, 11.5].
  //   closes 10, 10 -> z0 (200); 10.5 (on the inner edge: the zone above), 11 -> z1 (250). Value zone z1, upper 11.5.
  //   close 11.2 is not above 11.5: no entry, although volume 200 > 1.5 x mean(100, 100, 150) = 175.
  //   (Counting 10.5 in z0 would make z0 the value zone, upper 10.5, and enter here.)
  bar(4, 11.5, 10.8, 11.2, 200),
  // t=5, window c1..c4: lo 9.5, hi 11.5; z0: 10 (100); z1: 10.5, 11, 11.2 (450). Upper 11.5.
  //   close 11.8 > 11.5 and volume 300 > 1.5 x mean(100, 150, 200) = 225: BUY at 11.8; zone upper 11.5, stop 11.8 x 0.9 = 10.62.
  bar(5, 12, 11.4, 11.8, 300),
  // t=6: close 12.5 is above the zone and the stop: hold.
  bar(6, 12.6, 11.9, 12.5, 200),
  // t=7: close 11.4 <= 11.5, back in the zone (stop 10.62 not reached): SELL at 11.4.
  bar(7, 12.4, 11.3, 11.4, 150),
  // t=8, window c4..c7: lo 10.8, hi 12.6, width 0.9: z0 [10.8, 11.7), z1 [11.7, 12.6].
  //   z0: 11.2, 11.4 (350); z1: 11.8, 12.5 (500). Upper 12.6. Mean volume(300, 200, 150) = 216.67, x 1.5 = 325.
  //   close 12.8 > 12.6, volume 400 > 325: BUY at 12.8; stop 12.8 x 0.9 = 11.52.
  bar(8, 13, 12.5, 12.8, 400),
  // t=9: close 11.5 <= 11.52: STOP at 11.5 (it is back in the zone too; the stop is what is reported).
  bar(9, 12.9, 11.4, 11.5, 250),
  // t=10, window c6..c9: lo 11.3, hi 13, width 0.85: z0 [11.3, 12.15), z1 [12.15, 13].
  //   z0: 11.4, 11.5 (400); z1: 12.5, 12.8 (600). Upper 13. Mean volume(150, 400, 250) = 266.67, x 1.5 = 400.
  //   close 13.5 > 13, volume 500 > 400: BUY at 13.5; stop 12.15.
  bar(10, 13.6, 12.9, 13.5, 500),
  // t=11: close 14: hold; the candles end, so the position is closed at 14.
  bar(11, 14.1, 13.4, 14, 300),
];

t.test('signals of the hand-worked series', async (t) => {
  const s = volumeZoneBreakout(OPTIONS);
  t.same(
    HAND.map((c) => s.next(c)),
    [null, null, null, null, null, 'buy', null, 'sell', 'buy', 'stop', 'buy', null],
  );
});

t.test('the value zone of the first window, a close on an edge, and a tie', async (t) => {
  t.same(valueZone(HAND.slice(0, 4), 2), { index: 1, lower: 10.5, upper: 11.5, volume: 250 });
  // Equal volume in both zones: the higher zone is the value zone.
  t.match(valueZone([bar(0, 11, 10, 10.2, 50), bar(1, 12, 11, 11.9, 50)], 2), { index: 1, lower: 11, upper: 12 });
  // The highest close (= hi) belongs to the top zone; a window without a range has no zones.
  t.match(valueZone([bar(0, 12, 10, 12, 10), bar(1, 12, 10, 10, 5)], 4), { index: 3, lower: 11.5, upper: 12, volume: 10 });
  t.equal(valueZone([bar(0, 10, 10, 10, 1), bar(1, 10, 10, 10, 1)], 3), undefined);
});

t.test('volume must be above its average x the multiplier, not equal to it', async (t) => {
  // t=5 again with volume 225 = 1.5 x 150: no entry there.
  const series = HAND.map((c, i) => (i === 5 ? { ...c, volume: 225 } : c));
  const s = volumeZoneBreakout(OPTIONS);
  t.equal(series.map((c) => s.next(c))[5], null);
});

function memorySource(bySymbol: Record<string, Candle[]>): Pick<CollectorsPort, 'readCandles'> {
  return {
    async readCandles(q) {
      return (bySymbol[q.symbol] ?? []).filter((c) => c.time >= q.from && c.time < q.to);
    },
  };
}

const params = (symbols: string[], extra: Partial<JobParams<'backtest'>> = {}): JobParams<'backtest'> => ({
  strategy: 'volume-zone-breakout',
  exchange: 'upbit',
  symbols,
  timeframe: '1D',
  from: new Date(T0).toISOString(),
  to: new Date(T0 + 12 * DAY_MS).toISOString(),
  initialCash: 1000,
  feeRate: 0,
  options: OPTIONS,
  ...extra,
});
const quiet = { signal: new AbortController().signal, onProgress: () => {} };

t.test('trades, P&L and drawdown of the hand-worked series', async (t) => {
  const result = await runBacktest(params(['KRW-HAND']), memorySource({ 'KRW-HAND': HAND }), quiet);
  const trades = result.trades.map((tr) => ({ entry: tr.entryPrice, exit: tr.exitPrice, kind: tr.exit, day: (Date.parse(tr.exitTime) - T0) / DAY_MS }));
  t.same(trades, [
    { entry: 11.8, exit: 11.4, kind: 'signal', day: 7 },
    { entry: 12.8, exit: 11.5, kind: 'stop', day: 9 },
    { entry: 13.5, exit: 14, kind: 'end', day: 11 },
  ]);
  // Cash: 1000 -> x 11.4/11.8 = 966.101695 -> x 11.5/12.8 = 867.981992 -> x 14/13.5 = 900.129473.
  const pnl = result.trades.map((tr) => Math.round(tr.pnl * 1e6) / 1e6);
  t.same(pnl, [-33.898305, -98.119703, 32.147481]);
  t.equal(result.summary.finalEquity, 900.129473);
  t.equal(result.summary.totalReturnPct, -9.987053);
  // Peak 1000 x 12.5/11.8 (t=6); trough after the stop (t=9): 1000 x 11.4/11.8 x 11.5/12.8.
  // Drawdown 1 - (11.4 x 11.5) / (12.8 x 12.5) = 1 - 131.1/160 = 18.0625%.
  t.equal(result.summary.maxDrawdownPct, 18.0625);
  t.equal(result.summary.winRatePct, 33.333333);
  t.same(result.symbols['KRW-HAND'], result.summary, 'one symbol: the portfolio is that symbol');

  // A fee of 0.1% a side takes 0.999^2 from every round trip: 900.129473 x 0.999^6.
  const paying = await runBacktest(params(['KRW-HAND'], { feeRate: 0.001 }), memorySource({ 'KRW-HAND': HAND }), quiet);
  t.equal(paying.summary.finalEquity, Math.round(1000 * (11.4 / 11.8) * (11.5 / 12.8) * (14 / 13.5) * 0.999 ** 6 * 1e6) / 1e6);
});

t.test('several symbols: each reported on its own, and the combined figures of the portfolio', async (t) => {
  // Symbol B trades the same series one day later: the portfolio's trough and peak fall on other days than A's.
  const shifted = HAND.map((c) => ({ ...c, time: new Date(c.time.getTime() + DAY_MS) }));
  const result = await runBacktest(params(['KRW-A', 'KRW-B'], { to: new Date(T0 + 13 * DAY_MS).toISOString() }), memorySource({ 'KRW-A': HAND, 'KRW-B': shifted }), quiet);
  // Each has 500: both end at 500 x 0.900129473.
  t.equal(result.symbols['KRW-A']!.finalEquity, 450.064736);
  t.equal(result.symbols['KRW-B']!.finalEquity, 450.064736);
  t.equal(result.summary.finalEquity, 900.129473);
  t.equal(result.summary.trades, 6);
  t.equal(result.summary.candles, 24);
  t.equal(result.symbols['KRW-A']!.maxDrawdownPct, 18.0625);
  // Marks of A and B at each day (B one day behind), in units of 500:
  //   day 6: A 12.5/11.8 = 1.059322, B 1 (bought at day 6's close)  -> 2.059322 (the peak)
  //   day 7: A 0.966102, B 12.5/11.8 = 1.059322                        -> 2.025424
  //   day 9: A 0.867982, B 0.966102 -> 1.834084; day 10: A 0.867982, B 0.867982 -> 1.735964 (the trough)
  // Drawdown 1 - 1.735964 / 2.059322 = 15.702160%, less than a symbol's own, since they fall on different days.
  const expected = 1 - (2 * (11.4 / 11.8) * (11.5 / 12.8)) / (12.5 / 11.8 + 1);
  t.equal(result.summary.maxDrawdownPct, Math.round(expected * 100 * 1e6) / 1e6);
  t.equal(result.summary.maxDrawdownPct, 15.70216);
});

// ---- The reference: the definition again, from scratch at every candle, as plainly as possible.

interface RefTrade {
  entryDay: number;
  exitDay: number;
  entry: number;
  exit: number;
  kind: 'signal' | 'stop' | 'end';
}

function referenceZoneUpper(window: Candle[], zones: number): number | undefined {
  const lo = Math.min(...window.map((c) => c.low));
  const hi = Math.max(...window.map((c) => c.high));
  if (hi <= lo) return undefined;
  const edges: number[] = [];
  for (let k = 0; k <= zones; k++) edges.push(k === zones ? hi : lo + ((hi - lo) * k) / zones);
  const volume = new Array<number>(zones).fill(0);
  for (const c of window) {
    // Scan down from the top zone: the first whose lower edge is at or below the close holds it.
    for (let k = zones - 1; k >= 0; k--) {
      if (c.close >= edges[k]! || k === 0) {
        volume[k]! += c.volume;
        break;
      }
    }
  }
  // Scan down, keeping only a strictly larger volume: of equal ones the higher zone stays.
  let best = zones - 1;
  for (let k = zones - 2; k >= 0; k--) if (volume[k]! > volume[best]!) best = k;
  return edges[best + 1];
}

function reference(series: Candle[], o: typeof OPTIONS): RefTrade[] {
  const trades: RefTrade[] = [];
  let open: { day: number; price: number; upper: number; stop: number } | undefined;
  for (let i = 0; i < series.length; i++) {
    const c = series[i]!;
    if (open) {
      const kind = c.close <= open.stop ? 'stop' : c.close <= open.upper ? 'signal' : undefined;
      if (kind) {
        trades.push({ entryDay: open.day, exitDay: i, entry: open.price, exit: c.close, kind });
        open = undefined;
      }
      continue;
    }
    if (i < Math.max(o.lookback, o.volumeWindow)) continue;
    const upper = referenceZoneUpper(series.slice(i - o.lookback, i), o.zones);
    const volumes = series.slice(i - o.volumeWindow, i).map((x) => x.volume);
    const average = volumes.reduce((a, b) => a + b, 0) / volumes.length;
    if (upper !== undefined && c.close > upper && c.volume > o.volumeMultiplier * average) {
      open = { day: i, price: c.close, upper, stop: c.close * (1 - o.stopPct / 100) };
    }
  }
  if (open) trades.push({ entryDay: open.day, exitDay: series.length - 1, entry: open.price, exit: series.at(-1)!.close, kind: 'end' });
  return trades;
}

/** Mulberry32: a small seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prices on a 0.5 grid, so closes often sit exactly on zone edges and highs repeat. */
function randomSeries(rnd: () => number, n: number): Candle[] {
  const out: Candle[] = [];
  let price = 100;
  for (let i = 0; i < n; i++) {
    price = Math.max(5, price + Math.round((rnd() - 0.48) * 8) / 2);
    const high = price + Math.round(rnd() * 4) / 2;
    const low = Math.max(1, price - Math.round(rnd() * 4) / 2);
    const volume = rnd() < 0.15 ? 500 + Math.round(rnd() * 2000) : 100 + Math.round(rnd() * 200);
    out.push(bar(i, high, low, price, volume));
  }
  return out;
}

t.test('the strategy and the backtest agree with the reference on 300 random series', async (t) => {
  const rnd = random(20240101);
  let compared = 0;
  let trades = 0;
  const kinds = new Set<string>();
  for (let run = 0; run < 300; run++) {
    const o = {
      lookback: 2 + Math.floor(rnd() * 12),
      zones: 1 + Math.floor(rnd() * 8),
      volumeWindow: 1 + Math.floor(rnd() * 12),
      volumeMultiplier: [0, 1, 1.2, 2][Math.floor(rnd() * 4)]!,
      stopPct: [1, 3, 5, 10][Math.floor(rnd() * 4)]!,
    };
    const series = randomSeries(rnd, 60 + Math.floor(rnd() * 140));
    const expected = reference(series, o);
    const result = await runBacktest(
      params(['KRW-R'], { options: o, to: new Date(T0 + series.length * DAY_MS).toISOString(), feeRate: 0.0005 }),
      memorySource({ 'KRW-R': series }),
      // Small chunks: the strategy keeps its windows across reads.
      { ...quiet, candlesPerChunk: 7 },
    );
    const got = result.trades.map((tr) => ({
      entryDay: (Date.parse(tr.entryTime) - T0) / DAY_MS,
      exitDay: (Date.parse(tr.exitTime) - T0) / DAY_MS,
      entry: tr.entryPrice,
      exit: tr.exitPrice,
      kind: tr.exit,
    }));
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      t.same(got, expected, `run ${run} with ${JSON.stringify(o)}`);
      return;
    }
    // The account, recomputed: all-in, 0.05% a side.
    const equity = expected.reduce((cash, tr) => cash * (1 - 0.0005) ** 2 * (tr.exit / tr.entry), 1000);
    if (Math.abs(result.summary.finalEquity - equity) > 1e-5) {
      t.equal(result.summary.finalEquity, equity, `run ${run}: final equity`);
      return;
    }
    compared++;
    trades += expected.length;
    for (const tr of expected) kinds.add(tr.kind);
  }
  t.equal(compared, 300);
  t.ok(trades > 300, `the series traded (${trades} trades)`);
  t.same([...kinds].sort(), ['end', 'signal', 'stop'], 'with every kind of exit');
});

t.test('options are checked, every problem named', async (t) => {
  t.throws(() => volumeZoneBreakout({ lookback: 1, zones: 0, stopPct: 100, colour: 2 }), {
    code: 'invalid_input',
    problems: [
      'params.options.lookback must be an integer from 2 to 5000',
      'params.options.zones must be an integer from 1 to 200',
      'params.options.stopPct must be a number from 0.01 to 99',
      'params.options.colour is unknown; this strategy takes lookback, zones, volumeWindow, volumeMultiplier, stopPct',
    ],
  });
});
