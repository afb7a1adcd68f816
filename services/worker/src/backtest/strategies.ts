import { intOption, numOption, rejectUnknown, Window, type Signal, type Strategy } from './strategy-kit.ts';
import { volumeZoneBreakout } from './volume-zone.ts';
import { ValidationError } from '@wombat/core/platform';
import { type JobParams } from '@wombat/core/jobs';

/** The strategies the backtest job's schema names; each has its factory below. */
export type StrategyName = JobParams<'backtest'>['strategy'];

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

const FACTORIES: Record<StrategyName, (options: Record<string, number>) => Strategy> = {
  'ma-crossover': maCrossover,
  'volume-breakout': volumeBreakout,
  'volume-zone-breakout': volumeZoneBreakout,
};

export function createStrategy(name: StrategyName, options: Record<string, number> = {}): Strategy {
  return FACTORIES[name](options);
}
