import { TIMEFRAMES, type Timeframe } from '@wombat/core/jobs';

/** One normalised candle: `time` is the candle's start in UTC. */
export interface Candle {
  time: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  quoteVolume: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** Length of a fixed-length timeframe in ms; months have none (see addPeriods). */
const FIXED_MS: Record<Exclude<Timeframe, '1M'>, number> = {
  '1m': MINUTE_MS,
  '3m': 3 * MINUTE_MS,
  '5m': 5 * MINUTE_MS,
  '10m': 10 * MINUTE_MS,
  '15m': 15 * MINUTE_MS,
  '30m': 30 * MINUTE_MS,
  '1H': 60 * MINUTE_MS,
  '4H': 240 * MINUTE_MS,
  '1D': DAY_MS,
  '1W': 7 * DAY_MS,
};

// 1970-01-05 was a Monday: weeks start on Monday 00:00 UTC (Upbit's week candles).
const MONDAY_EPOCH_MS = 4 * DAY_MS;

export function isTimeframe(value: unknown): value is Timeframe {
  return typeof value === 'string' && (TIMEFRAMES as readonly string[]).includes(value);
}

/** Start of the candle that contains `t`. */
export function floorToTimeframe(tf: Timeframe, t: Date): Date {
  const ms = t.getTime();
  if (tf === '1M') return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1));
  if (tf === '1W') return new Date(ms - ((((ms - MONDAY_EPOCH_MS) % FIXED_MS['1W']) + FIXED_MS['1W']) % FIXED_MS['1W']));
  const unit = FIXED_MS[tf];
  return new Date(ms - (((ms % unit) + unit) % unit));
}

/** `start` moved by `n` periods (n may be negative); `start` should be aligned. */
export function addPeriods(tf: Timeframe, start: Date, n: number): Date {
  if (tf === '1M') return new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + n, 1));
  return new Date(start.getTime() + n * FIXED_MS[tf]);
}

/**
 * Exclusive end of the closed candles at `now`: a candle is closed once its end
 * has passed, so every candle starting before the current period's start is.
 */
export function closedCutoff(tf: Timeframe, now: Date): Date {
  return floorToTimeframe(tf, now);
}

/** Approximate period length in ms (months as 30 days), for progress and page estimates. */
export function approxPeriodMs(tf: Timeframe): number {
  return tf === '1M' ? 30 * DAY_MS : FIXED_MS[tf];
}

/** Sorted ascending by time with one candle per start; the later entry wins on duplicates. */
export function sortUnique(candles: Candle[]): Candle[] {
  const byTime = new Map<number, Candle>();
  for (const c of candles) byTime.set(c.time.getTime(), c);
  return [...byTime.values()].sort((a, b) => a.time.getTime() - b.time.getTime());
}

/** Problems with a candle's values, empty when it is sound. */
export function candleProblems(c: Candle): string[] {
  const problems: string[] = [];
  if (Number.isNaN(c.time.getTime())) problems.push('time is not a valid instant');
  for (const k of ['open', 'high', 'low', 'close', 'volume', 'quoteVolume'] as const) {
    if (typeof c[k] !== 'number' || !Number.isFinite(c[k]) || c[k] < 0) problems.push(`${k} must be a finite number >= 0, got ${String(c[k])}`);
  }
  if (problems.length === 0 && (c.high < c.low || c.high < Math.max(c.open, c.close) || c.low > Math.min(c.open, c.close))) {
    problems.push(`high/low ${c.high}/${c.low} do not contain open/close ${c.open}/${c.close}`);
  }
  return problems;
}
