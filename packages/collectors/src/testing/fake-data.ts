import type { Timeframe } from '@wombat/core/jobs';
import { addPeriods, floorToTimeframe, type Candle } from '../candle.ts';

/**
 * Deterministic market data for the fake exchange: whether a candle exists and
 * its values depend only on (symbol, timeframe, start), so a test can compare
 * what was collected with `candles(...)`, the fake's ground truth.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

function unit(s: string): number {
  return hash32(s) / 0x1_0000_0000;
}

export interface SeriesSpec {
  symbol: string;
  /** First candle start; nothing exists before. */
  listedAt: Date;
  /** Share of periods without trades (no candle), 0..1. */
  gapRatio: number;
  basePrice: number;
  /** Price tick: values are multiples of it. */
  tick: number;
}

export function hasCandle(spec: SeriesSpec, tf: Timeframe, start: Date): boolean {
  if (start < spec.listedAt) return false;
  return spec.gapRatio <= 0 || unit(`${spec.symbol}|${tf}|${start.getTime()}|gap`) >= spec.gapRatio;
}

/**
 * The candle at `start`. Until it is final (`finalAt`, by default the period's end)
 * the values depend on `now`, like a live exchange's current candle.
 */
export function candleAt(spec: SeriesSpec, tf: Timeframe, start: Date, now: Date, finalAt: Date = addPeriods(tf, start, 1)): Candle {
  const open = finalAt > now;
  const seed = `${spec.symbol}|${tf}|${start.getTime()}${open ? `|${now.getTime()}` : ''}`;
  const drift = 1 + 0.3 * Math.sin(start.getTime() / 8.64e8 + (hash32(spec.symbol) % 7));
  const round = (x: number) => Math.max(spec.tick, Math.round(x / spec.tick) * spec.tick);
  const o = round(spec.basePrice * drift * (0.98 + 0.04 * unit(`${seed}|o`)));
  const c = round(o * (0.97 + 0.06 * unit(`${seed}|c`)));
  const h = round(Math.max(o, c) * (1 + 0.02 * unit(`${seed}|h`)));
  const l = round(Math.min(o, c) * (1 - 0.02 * unit(`${seed}|l`)));
  const volume = Math.round(1e6 * unit(`${seed}|v`)) / 1e4 + 0.0001;
  return { time: start, open: o, high: h, low: Math.min(l, o, c), close: c, volume, quoteVolume: Math.round(volume * ((o + c) / 2) * 100) / 100 };
}

/** Existing candles ending at or before `to` (start + period <= to), newest first, at most `count`. */
export function candlesBefore(spec: SeriesSpec, tf: Timeframe, to: Date, count: number, now: Date, opts: { includeOpen?: boolean } = {}): Candle[] {
  const out: Candle[] = [];
  const current = floorToTimeframe(tf, now);
  let start = addPeriods(tf, floorToTimeframe(tf, to), -1);
  // A `to` in the future (or none) reaches the still-open current candle.
  if (opts.includeOpen || start > current) start = current;
  for (; out.length < count && start >= floorToTimeframe(tf, spec.listedAt); start = addPeriods(tf, start, -1)) {
    if (hasCandle(spec, tf, start)) out.push(candleAt(spec, tf, start, now));
  }
  return out;
}

/** Ground truth: closed candles with start in [from, to), oldest first. */
export function closedCandles(spec: SeriesSpec, tf: Timeframe, from: Date, to: Date, now: Date): Candle[] {
  const out: Candle[] = [];
  const first = floorToTimeframe(tf, from);
  for (let s = first < from ? addPeriods(tf, first, 1) : first; s < to; s = addPeriods(tf, s, 1)) {
    if (addPeriods(tf, s, 1) > now) break;
    if (hasCandle(spec, tf, s)) out.push(candleAt(spec, tf, s, now));
  }
  return out;
}
