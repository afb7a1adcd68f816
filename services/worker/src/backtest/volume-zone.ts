import { ValidationError } from '@wombat/core/platform';
import type { Candle } from '../collectors-port.ts';
import { intOption, numOption, rejectUnknown, type Signal, type Strategy } from './strategy-kit.ts';

export const VOLUME_ZONE_DEFAULTS = { lookback: 20, zones: 10, volumeWindow: 20, volumeMultiplier: 1, stopPct: 5 } as const;

/** The highest-volume price zone of a window of candles; undefined when the window has no price range. */
export interface ValueZone {
  index: number;
  lower: number;
  upper: number;
  volume: number;
}

/**
 * The volume profile of `window`: its range from the lowest low (lo) to the highest high (hi) cut
 * into `zones` equal zones, zone k spanning [edge(k), edge(k+1)] with edge(k) = lo + (hi - lo) * k / zones
 * and edge(zones) = hi. Each candle's whole volume counts in the zone holding its close: the zone
 * whose lower edge is the highest one at or below the close (a close on an inner edge belongs to the
 * zone above). The value zone has the most volume; of equal ones, the higher.
 */
export function valueZone(window: readonly Candle[], zones: number): ValueZone | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const c of window) {
    if (c.low < lo) lo = c.low;
    if (c.high > hi) hi = c.high;
  }
  if (!(hi > lo)) return undefined;
  const edge = (k: number) => (k === zones ? hi : lo + ((hi - lo) * k) / zones);
  const volumes = new Array<number>(zones).fill(0);
  for (const c of window) {
    // The arithmetic guess can be one off at an edge: settle it against the edges themselves.
    let k = Math.min(zones - 1, Math.max(0, Math.floor(((c.close - lo) / (hi - lo)) * zones)));
    while (k < zones - 1 && c.close >= edge(k + 1)) k++;
    while (k > 0 && c.close < edge(k)) k--;
    volumes[k]! += c.volume;
  }
  let best = 0;
  for (let k = 1; k < zones; k++) if (volumes[k]! >= volumes[best]!) best = k;
  return { index: best, lower: edge(best), upper: edge(best + 1), volume: volumes[best]! };
}

/**
 * Volume-zone breakout (the older setup's `volume_zone_breakout`), long only. At each candle t:
 *
 * - flat: buy at the close when the value zone (see valueZone) of the previous `lookback` candles is
 *   broken, close_t > its upper edge, on volume_t > `volumeMultiplier` x the mean volume of the
 *   previous `volumeWindow` candles. The zone is kept for the trade.
 * - long: `stop` when close_t <= entry close x (1 - `stopPct` / 100); otherwise `sell` when close_t is
 *   back at or below the kept zone's upper edge (into the zone, or through it).
 *
 * Nothing happens before both windows are full. Every order fills at the signal candle's close, so
 * the stop is judged on closes, not on lows within a candle. Options (defaults): lookback (20),
 * zones (10), volumeWindow (20), volumeMultiplier (1), stopPct (5).
 */
export function volumeZoneBreakout(options: Record<string, number> = {}): Strategy {
  const problems: string[] = [];
  const d = VOLUME_ZONE_DEFAULTS;
  const lookback = intOption(options, 'lookback', d.lookback, 2, 5000, problems);
  const zones = intOption(options, 'zones', d.zones, 1, 200, problems);
  const volumeWindow = intOption(options, 'volumeWindow', d.volumeWindow, 1, 5000, problems);
  const multiplier = numOption(options, 'volumeMultiplier', d.volumeMultiplier, 0, 1000, problems);
  const stopPct = numOption(options, 'stopPct', d.stopPct, 0.01, 99, problems);
  rejectUnknown(options, Object.keys(d), problems);
  if (problems.length > 0) throw new ValidationError(problems);

  const keep = Math.max(lookback, volumeWindow);
  const history: Candle[] = [];
  let position: { zoneUpper: number; stop: number } | undefined;
  return {
    next(c) {
      let signal: Signal = null;
      if (position) {
        if (c.close <= position.stop) signal = 'stop';
        else if (c.close <= position.zoneUpper) signal = 'sell';
        if (signal !== null) position = undefined;
      } else if (history.length >= keep) {
        const zone = valueZone(history.slice(-lookback), zones);
        let volumeSum = 0;
        for (let i = history.length - volumeWindow; i < history.length; i++) volumeSum += history[i]!.volume;
        if (zone && c.close > zone.upper && c.volume > multiplier * (volumeSum / volumeWindow)) {
          signal = 'buy';
          position = { zoneUpper: zone.upper, stop: c.close * (1 - stopPct / 100) };
        }
      }
      history.push(c);
      if (history.length > 2 * keep) history.splice(0, history.length - keep);
      return signal;
    },
  };
}
