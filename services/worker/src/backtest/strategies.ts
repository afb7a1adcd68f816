import { ValidationError } from '@wombat/core/platform';
import type { Candle } from '../collectors-port.ts';

export type Signal = 'buy' | 'sell' | null;

/** A strategy sees candles one at a time, oldest first, and says what to do at that candle's close. */
export interface Strategy {
  next(candle: Candle): Signal;
}

export const STRATEGIES = ['ma-crossover', 'volume-breakout'] as const;
export type StrategyName = (typeof STRATEGIES)[number];

/** Fixed-size window with a running sum. */
class Window {
  readonly values: number[] = [];
  sum = 0;
  readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  push(v: number): void {
    this.values.push(v);
    this.sum += v;
    if (this.values.length > this.size) this.sum -= this.values.shift()!;
  }
  get full(): boolean {
    return this.values.length === this.size;
  }
  get mean(): number {
    return this.sum / this.values.length;
  }
}

function intOption(options: Record<string, number>, name: string, def: number, min: number, max: number, problems: string[]): number {
  const v = options[name] ?? def;
  if (!Number.isInteger(v) || v < min || v > max) problems.push(`params.options.${name} must be an integer from ${min} to ${max}`);
  return v;
}

function numOption(options: Record<string, number>, name: string, def: number, min: number, max: number, problems: string[]): number {
  const v = options[name] ?? def;
  if (!Number.isFinite(v) || v < min || v > max) problems.push(`params.options.${name} must be a number from ${min} to ${max}`);
  return v;
}

/**
 * Moving-average crossover on closes: buy when the fast SMA crosses above the slow one, sell when it
 * crosses below. Options: fast (default 5), slow (default 20), fast < slow.
 */
export function maCrossover(options: Record<string, number> = {}): Strategy {
  const problems: string[] = [];
  const fast = intOption(options, 'fast', 5, 1, 1000, problems);
  const slow = intOption(options, 'slow', 20, 2, 5000, problems);
  if (problems.length === 0 && fast >= slow) problems.push('params.options.fast must be smaller than params.options.slow');
  rejectUnknown(options, ['fast', 'slow'], problems);
  if (problems.length > 0) throw new ValidationError(problems);
  const f = new Window(fast);
  const s = new Window(slow);
  let prevDiff: number | undefined;
  return {
    next(c) {
      f.push(c.close);
      s.push(c.close);
      if (!s.full) return null;
      const diff = f.mean - s.mean;
      const before = prevDiff;
      prevDiff = diff;
      if (before === undefined) return null;
      if (before <= 0 && diff > 0) return 'buy';
      if (before >= 0 && diff < 0) return 'sell';
      return null;
    },
  };
}

/**
 * Volume-zone breakout: buy when the close breaks above the highest high of the previous `lookback`
 * candles on volume at least `volumeMultiplier` times their average volume; sell when the close falls
 * below the lowest low of the previous `exitLookback` candles. Options: lookback (20),
 * volumeMultiplier (2), exitLookback (10).
 */
export function volumeBreakout(options: Record<string, number> = {}): Strategy {
  const problems: string[] = [];
  const lookback = intOption(options, 'lookback', 20, 1, 5000, problems);
  const multiplier = numOption(options, 'volumeMultiplier', 2, 0, 1000, problems);
  const exitLookback = intOption(options, 'exitLookback', 10, 1, 5000, problems);
  rejectUnknown(options, ['lookback', 'volumeMultiplier', 'exitLookback'], problems);
  if (problems.length > 0) throw new ValidationError(problems);
  const highs: number[] = [];
  const lows: number[] = [];
  const volumes = new Window(lookback);
  return {
    next(c) {
      let signal: Signal = null;
      if (highs.length >= lookback && volumes.full) {
        const high = Math.max(...highs.slice(-lookback));
        if (c.close > high && c.volume >= multiplier * volumes.mean) signal = 'buy';
      }
      if (signal === null && lows.length >= exitLookback) {
        const low = Math.min(...lows.slice(-exitLookback));
        if (c.close < low) signal = 'sell';
      }
      highs.push(c.high);
      lows.push(c.low);
      volumes.push(c.volume);
      const keep = Math.max(lookback, exitLookback);
      if (highs.length > keep * 2) {
        highs.splice(0, highs.length - keep);
        lows.splice(0, lows.length - keep);
      }
      return signal;
    },
  };
}

function rejectUnknown(options: Record<string, number>, known: string[], problems: string[]): void {
  for (const k of Object.keys(options)) if (!known.includes(k)) problems.push(`params.options.${k} is unknown; this strategy takes ${known.join(', ')}`);
}

export function createStrategy(name: StrategyName, options: Record<string, number> = {}): Strategy {
  return name === 'ma-crossover' ? maCrossover(options) : volumeBreakout(options);
}
