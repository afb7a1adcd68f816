/** Period of each fixed-length timeframe in seconds; months are counted by calendar. */
const PERIOD_SECONDS: Record<string, number> = {
  '1m': 60, '3m': 180, '5m': 300, '10m': 600, '15m': 900, '30m': 1800, '1H': 3600, '4H': 14_400, '1D': 86_400, '1W': 604_800,
};
const DAY_MS = 86_400_000;

/**
 * Periods between the first and the last stored candle that have no candle. KRX
 * days count weekdays only; a holiday or a period without trades (Upbit stores
 * no candle then) still shows here: it is a figure to look at, not an error.
 */
export function missingPeriods(exchange: string, timeframe: string, first: Date, last: Date, count: number): number | null {
  let expected: number;
  if (timeframe === '1M') {
    expected = (last.getUTCFullYear() - first.getUTCFullYear()) * 12 + (last.getUTCMonth() - first.getUTCMonth()) + 1;
  } else if (exchange === 'kis' && timeframe === '1D') {
    expected = 0;
    for (let t = first.getTime(); t <= last.getTime(); t += DAY_MS) {
      const dow = new Date(t).getUTCDay();
      if (dow !== 0 && dow !== 6) expected += 1;
    }
  } else {
    const period = PERIOD_SECONDS[timeframe];
    if (period === undefined) return null;
    expected = Math.floor((last.getTime() - first.getTime()) / (period * 1000)) + 1;
  }
  return Math.max(0, expected - count);
}
