import type { Exchange, Timeframe } from '@wombat/core/jobs';
import { addPeriods, closedCutoff, floorToTimeframe } from './candle.ts';

/**
 * When a candle is closed, per market. Upbit trades around the clock and closes its
 * candles on UTC period boundaries. KRX, which KIS serves, trades on weekdays in KST
 * (UTC+9, no DST): the regular session runs 09:00-15:30 and after-hours single-price
 * trading until 18:00, which can still add to the day's volume; we found nothing saying
 * KIS's daily chart is final earlier, so 18:00 is the default close.
 * A KIS candle is stamped 00:00 UTC of its KST trading date, which is 09:00 KST, the
 * regular session's opening; week candles on Monday, month candles on the 1st. It is
 * closed once the session of the last weekday of its period has ended.
 */
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
const KST_OFFSET_MS = 9 * HOUR_MS;

/** After-hours trading ends at 18:00 KST; the daily chart is final from then on. */
export const KRX_SESSION_CLOSE_DEFAULT = '18:00';
/** Earlier than the regular session's end would store a candle still trading. */
const EARLIEST_CLOSE_MINUTES = 15 * 60 + 30;

/** "18:00" -> minutes after midnight KST; throws saying what to fix. */
export function parseSessionClose(value: string): number {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(value.trim());
  const minutes = m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  if (!(minutes >= EARLIEST_CLOSE_MINUTES)) {
    throw new Error(`"${value}" must be a KST time of day HH:MM from 15:30 (the regular session's end) to 23:59, for example 18:00`);
  }
  return minutes;
}

/** The last weekday of a KIS period (its last possible session), as 00:00 UTC of that date. */
function lastSessionDay(tf: '1D' | '1W' | '1M', period: Date): Date {
  if (tf === '1D') return period;
  if (tf === '1W') return new Date(period.getTime() + 4 * DAY_MS);
  let day = new Date(addPeriods('1M', period, 1).getTime() - DAY_MS);
  while (day.getUTCDay() === 0 || day.getUTCDay() === 6) day = new Date(day.getTime() - DAY_MS);
  return day;
}

/** The instant a KIS candle stamped `period` is closed. */
export function kisPeriodClose(tf: '1D' | '1W' | '1M', period: Date, sessionCloseMinutes: number): Date {
  return new Date(lastSessionDay(tf, period).getTime() + sessionCloseMinutes * 60_000 - KST_OFFSET_MS);
}

/**
 * Exclusive end of the KIS candles closed at `now`: the stamp of the period holding
 * today's KST date, or of the next one once that period's last session has ended.
 * Earlier periods ended on an earlier KST date, so before `now` (the close is before
 * midnight KST). A holiday ending a period only makes it close later than it could.
 */
export function kisClosedCutoff(tf: Timeframe, now: Date, sessionCloseMinutes = parseSessionClose(KRX_SESSION_CLOSE_DEFAULT)): Date {
  if (tf !== '1D' && tf !== '1W' && tf !== '1M') return closedCutoff(tf, now);
  const kstDate = new Date(Math.floor((now.getTime() + KST_OFFSET_MS) / DAY_MS) * DAY_MS);
  const period = floorToTimeframe(tf, kstDate);
  return now >= kisPeriodClose(tf, period, sessionCloseMinutes) ? addPeriods(tf, period, 1) : period;
}

/** Exclusive end of the closed candles of `exchange` at `now`. */
export function closedCutoffOf(exchange: Exchange, tf: Timeframe, now: Date, opts: { kisSessionCloseMinutes?: number } = {}): Date {
  return exchange === 'kis' ? kisClosedCutoff(tf, now, opts.kisSessionCloseMinutes) : closedCutoff(tf, now);
}
