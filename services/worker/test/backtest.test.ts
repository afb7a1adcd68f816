import t from 'tap';
import type { JobParams } from '@wombat/core/jobs';
import { Account } from '../src/backtest/portfolio.ts';
import { maCrossover, volumeBreakout } from '../src/backtest/strategies.ts';
import { runBacktest, type Candle } from '../src/index.ts';
import { memoryCandles } from './fixtures/candles.ts';

const DAY_MS = 86_400_000;
const candle = (i: number, c: Partial<Candle> & { close: number }): Candle => ({
  time: new Date(i * DAY_MS),
  open: c.close,
  high: c.high ?? c.close,
  low: c.low ?? c.close,
  close: c.close,
  volume: c.volume ?? 100,
  quoteVolume: 0,
});
const closes = (values: number[]) => values.map((close, i) => candle(i, { close }));

t.test('ma-crossover buys when the fast average crosses above the slow one and sells on the cross below', async (t) => {
  const s = maCrossover({ fast: 2, slow: 3 });
  const signals = closes([10, 10, 10, 12, 14, 10, 6, 6]).map((c) => s.next(c));
  t.same(signals, [null, null, null, 'buy', null, null, 'sell', null]);
});

t.test('volume-breakout buys a breakout above the lookback high on high volume and sells below the exit low', async (t) => {
  const s = volumeBreakout({ lookback: 2, volumeMultiplier: 2, exitLookback: 1 });
  const series = [
    candle(0, { high: 10, low: 9, close: 9.5, volume: 100 }),
    candle(1, { high: 10, low: 9, close: 9.5, volume: 100 }),
    candle(2, { high: 12, low: 10, close: 11, volume: 300 }),
    candle(3, { high: 11.5, low: 10.5, close: 11, volume: 100 }),
    candle(4, { high: 11, low: 9, close: 9.5, volume: 100 }),
    // Breaks the high, but on volume under twice the average: no entry.
    candle(5, { high: 13, low: 12, close: 12.5, volume: 150 }),
  ];
  t.same(series.map((c) => s.next(c)), [null, null, 'buy', null, 'sell', null]);
});

t.test('strategy options are checked and every problem is named', async (t) => {
  t.throws(() => maCrossover({ fast: 20, slow: 10 }), { code: 'invalid_input', message: /fast must be smaller than params\.options\.slow/ });
  const problems = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      return (err as { problems?: string[] }).problems;
    }
    return undefined;
  };
  t.same(problems(() => maCrossover({ fast: 1.5, speed: 3 })), ['params.options.fast must be an integer from 1 to 1000', 'params.options.speed is unknown; this strategy takes fast, slow']);
  t.same(problems(() => volumeBreakout({ lookback: 0 })), ['params.options.lookback must be an integer from 1 to 5000']);
});

t.test('the account trades all-in with fees and reports return, drawdown and win rate', async (t) => {
  const series = closes([10, 10, 10, 12, 14, 10, 6, 6]);
  const signals = [null, null, null, 'buy', null, null, 'sell', null] as const;

  const free = new Account('X', 1000, 0);
  series.forEach((c, i) => free.apply(c, signals[i]!));
  const s = free.finish();
  t.equal(s.finalEquity, 500);
  t.equal(s.totalReturnPct, -50);
  t.equal(s.maxDrawdownPct, 57.142857, 'peak 1166.67 at 14, trough 500 at 6');
  t.equal(s.trades, 1);
  t.equal(s.winRatePct, 0);
  t.equal(s.candles, 8);

  const paying = new Account('X', 1000, 0.01);
  series.forEach((c, i) => paying.apply(c, signals[i]!));
  const p = paying.finish();
  t.equal(p.finalEquity, 490.05, '1000 * 0.99 / 12 units, sold at 6 less 1%');
  const [trade] = paying.trades;
  t.match(trade, { symbol: 'X', entryPrice: 12, exitPrice: 6, quantity: 82.5, exit: 'signal' });
  t.equal(Math.round(trade!.pnl * 100) / 100, -509.95);
});

t.test('a position still open at the end is closed at the last close and counted', async (t) => {
  const a = new Account('X', 100, 0);
  closes([10, 20, 30]).forEach((c, i) => a.apply(c, i === 0 ? 'buy' : null));
  const s = a.finish();
  t.equal(s.finalEquity, 300);
  t.equal(s.totalReturnPct, 200);
  t.equal(s.winRatePct, 100);
  t.equal(a.trades[0]!.exit, 'end');
  t.equal(s.maxDrawdownPct, 0);
  t.ok(s.sharpe !== null && s.sharpe > 0);

  const idle = new Account('Y', 100, 0);
  closes([10, 11, 12]).forEach((c) => idle.apply(c, null));
  t.match(idle.finish(), { finalEquity: 100, trades: 0, winRatePct: null, sharpe: null });
});

t.test('a backtest gives the same answer whatever the chunk size, and stops when aborted', async (t) => {
  const params: JobParams<'backtest'> = {
    strategy: 'ma-crossover',
    exchange: 'upbit',
    symbols: ['KRW-A', 'KRW-B'],
    timeframe: '1D',
    from: '2025-01-01T00:00:00Z',
    to: '2026-01-01T00:00:00Z',
    initialCash: 2000,
    feeRate: 0.001,
    options: { fast: 3, slow: 8 },
  };
  const progress: number[] = [];
  const whole = await runBacktest(params, memoryCandles(), { signal: new AbortController().signal, onProgress: (f) => progress.push(f) });
  const chunked = await runBacktest(params, memoryCandles(), { signal: new AbortController().signal, onProgress: () => {}, candlesPerChunk: 7 });
  t.same(chunked, whole);
  t.same(progress, [0.5, 1]);
  t.equal(whole.summary.candles, 730);
  t.equal(whole.summary.trades, whole.trades.length);
  // The portfolio adds the accounts' unrounded equity: within rounding of the symbols' rounded figures.
  t.ok(Math.abs(whole.summary.finalEquity - (whole.symbols['KRW-A']!.finalEquity + whole.symbols['KRW-B']!.finalEquity)) <= 2e-6, 'the overall equity is the sum of the symbols\'');
  t.ok(whole.trades.every((tr, i) => i === 0 || whole.trades[i - 1]!.exitTime <= tr.exitTime), 'trades in exit order');

  const ac = new AbortController();
  const source = memoryCandles();
  const run = runBacktest(params, source, { signal: ac.signal, onProgress: () => ac.abort(new Error('cancelled')), candlesPerChunk: 7 });
  await t.rejects(run, { message: 'cancelled' });
  t.equal(source.reads, 1, 'no read after the abort');
});

t.test('a backtest over symbols with no stored candles fails saying to collect them; a partly empty one warns', async (t) => {
  const params: JobParams<'backtest'> = {
    strategy: 'ma-crossover',
    exchange: 'upbit',
    symbols: ['KRW-NONE'],
    timeframe: '1D',
    from: '2025-01-01T00:00:00Z',
    to: '2026-01-01T00:00:00Z',
  };
  const empty = { readCandles: async () => [] };
  await t.rejects(runBacktest(params, empty, { signal: new AbortController().signal, onProgress: () => {} }), {
    code: 'no_candles',
    message: /no 1D candles are stored for upbit KRW-NONE .*collect them first/,
  });
  const stored = memoryCandles();
  const someStored = { readCandles: async (q: Parameters<typeof stored.readCandles>[0]) => (q.symbol === 'KRW-NONE' ? [] : stored.readCandles(q)) };
  const partly = await runBacktest({ ...params, symbols: ['KRW-A', 'KRW-NONE'], options: { fast: 3, slow: 8 } }, someStored, {
    signal: new AbortController().signal,
    onProgress: () => {},
  });
  t.same(partly.warnings, ['no candles stored for KRW-NONE: their share of the cash stayed idle']);
  t.equal(partly.symbols['KRW-NONE']!.candles, 0);
});
