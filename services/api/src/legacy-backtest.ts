import { TIMEFRAMES } from '@wombat/core/jobs';
import { type RunState } from '@wombat/core/runs';

/**
 * The backtest body of the system Wombat replaces, mapped to the backtest job's
 * parameters, so its clients keep working unchanged:
 *
 *   {"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW", "ETH_KRW"],
 *    "start_date": "2024-01-01", "end_date": "2024-12-31"}
 *   {"strategy": "ma_crossover", "symbol": "BTC_KRW", "start_date": "2024-01-01",
 *    "end_date": "2024-06-30", "short_window": 5, "long_window": 20, "initial_capital": 1000000}
 *
 * become {strategy: 'volume-zone-breakout', exchange: 'upbit', symbols: ['KRW-BTC', 'KRW-ETH'],
 * from: 2024-01-01T00:00Z, to: 2025-01-01T00:00Z} (dates are UTC days, the end day included) and
 * {strategy: 'ma-crossover', ..., symbols: ['KRW-BTC'], options: {fast: 5, slow: 20}, initialCash: 1000000}.
 * The mapped parameters then go through the job's own schema, like any request.
 */
export type LegacyMapping = { ok: true; params: Record<string, unknown> } | { ok: false; problems: string[] };

/** The replaced system's body has `symbol` or `start_date`/`end_date`; Wombat's has `from` and `to`. */
export function isLegacyBacktestBody(body: unknown): body is Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  return 'symbol' in b || 'start_date' in b || 'end_date' in b;
}

const STRATEGY_ALIASES: Record<string, string> = {
  'ma-crossover': 'ma-crossover',
  'ma-cross': 'ma-crossover',
  'sma-crossover': 'ma-crossover',
  'moving-average': 'ma-crossover',
  'moving-average-crossover': 'ma-crossover',
  'golden-cross': 'ma-crossover',
  'volume-breakout': 'volume-breakout',
  'volume': 'volume-breakout',
  'volume-zone-breakout': 'volume-zone-breakout',
  'volume-zone': 'volume-zone-breakout',
  'volume-profile-breakout': 'volume-zone-breakout',
};

/** Strategy parameters by the names the replaced system used, and Wombat's own names. */
const OPTION_ALIASES: Record<string, string> = {
  fast: 'fast',
  short_window: 'fast',
  short_period: 'fast',
  fast_period: 'fast',
  short_ma: 'fast',
  slow: 'slow',
  long_window: 'slow',
  long_period: 'slow',
  slow_period: 'slow',
  long_ma: 'slow',
  lookback: 'lookback',
  lookback_period: 'lookback',
  window: 'lookback',
  volume_multiplier: 'volumeMultiplier',
  volumeMultiplier: 'volumeMultiplier',
  exit_lookback: 'exitLookback',
  exitLookback: 'exitLookback',
  zones: 'zones',
  num_zones: 'zones',
  n_zones: 'zones',
  bins: 'zones',
  num_bins: 'zones',
  volume_window: 'volumeWindow',
  volume_period: 'volumeWindow',
  volumeWindow: 'volumeWindow',
  stop_pct: 'stopPct',
  stop_loss_pct: 'stopPct',
  stopPct: 'stopPct',
};

const CASH_KEYS = ['initial_capital', 'initial_cash', 'initial_balance', 'capital'];
const FEE_KEYS = ['commission', 'commission_rate', 'fee', 'fee_rate'];
const TIMEFRAME_KEYS = ['timeframe', 'interval'];
const PASSED_ON = new Set(['strategy', 'symbol', 'symbols', 'start_date', 'end_date', 'from', 'to', 'exchange', 'params', 'strategy_params', ...CASH_KEYS, ...FEE_KEYS, ...TIMEFRAME_KEYS]);

/** "BTC_KRW", "BTC/KRW" (base, quote) -> Upbit's "KRW-BTC" (quote-base); "KRW-BTC" and KIS codes stay as given. */
export function upbitMarket(symbol: string): string {
  const m = /^([A-Za-z0-9]+)[_/]([A-Za-z]+)$/.exec(symbol.trim());
  return m ? `${m[2]!.toUpperCase()}-${m[1]!.toUpperCase()}` : symbol.trim();
}

/** The currencies Upbit quotes its markets in. */
const UPBIT_QUOTES = ['KRW', 'BTC', 'USDT'];

/** `symbol` (or `symbols`) as the exchange's markets; a problem for each one that maps to none. */
function marketsOf(body: Record<string, unknown>, exchange: unknown, problems: string[]): string[] | undefined {
  if (body.symbol !== undefined && body.symbols !== undefined) {
    problems.push('give symbol (one) or symbols (a list), not both');
    return undefined;
  }
  const field = body.symbols !== undefined ? 'symbols' : 'symbol';
  const given = field === 'symbols' ? body.symbols : [body.symbol];
  if (!Array.isArray(given) || given.length === 0 || given.some((s) => typeof s !== 'string' || s.trim() === '')) {
    problems.push(field === 'symbols' ? 'symbols must be a non-empty list of symbols, e.g. ["BTC_KRW", "ETH_KRW"]' : 'symbol is required, e.g. "BTC_KRW"');
    return undefined;
  }
  const markets: string[] = [];
  for (const [i, raw] of (given as string[]).entries()) {
    const where = field === 'symbols' ? `symbols[${i}] "${raw}"` : `symbol "${raw}"`;
    if (exchange !== 'upbit') {
      markets.push(raw.trim());
      continue;
    }
    const market = upbitMarket(raw).toUpperCase();
    const quote = /^([A-Z]+)-[A-Z0-9]+$/.exec(market)?.[1];
    if (quote === undefined) problems.push(`${where} names no Upbit market: write it as BASE_QUOTE, e.g. BTC_KRW (Upbit's KRW-BTC)`);
    else if (!UPBIT_QUOTES.includes(quote)) problems.push(`${where} cannot be an Upbit market: Upbit quotes in ${UPBIT_QUOTES.join(', ')}, not ${quote}`);
    else if (markets.includes(market)) problems.push(`${where} is ${market} again: give each symbol once`);
    else markets.push(market);
  }
  return markets;
}

function timeframeOf(v: string): string | undefined {
  if ((TIMEFRAMES as readonly string[]).includes(v)) return v;
  const lower = v.toLowerCase();
  const words: Record<string, string> = { day: '1D', days: '1D', daily: '1D', '1day': '1D', hour: '1H', '1hour': '1H', hourly: '1H', week: '1W', weekly: '1W', month: '1M', monthly: '1M' };
  if (Object.hasOwn(words, lower)) return words[lower];
  // "1d", "4h", "1w": the replaced system wrote units in lower case (minutes stay "m").
  const m = /^(\d+)([hdw])$/.exec(lower);
  const tf = m ? `${m[1]}${m[2]!.toUpperCase()}` : undefined;
  return tf && (TIMEFRAMES as readonly string[]).includes(tf) ? tf : undefined;
}

/** "2024-01-01" is that day's start in UTC; as an end date the whole day is included. */
function instantOf(field: string, v: unknown, end: boolean, problems: string[]): string | undefined {
  if (typeof v !== 'string') {
    problems.push(`${field} is required: a date like 2024-01-31 or an ISO 8601 instant`);
    return undefined;
  }
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(v);
  const ms = Date.parse(dateOnly ? `${v}T00:00:00Z` : v);
  // Date.parse rolls 2024-02-30 over to March: a day that does not exist is refused, not moved.
  if (Number.isNaN(ms) || (dateOnly && new Date(ms).toISOString().slice(0, 10) !== v)) {
    problems.push(`${field} "${v}" must be a date like 2024-01-31 or an ISO 8601 instant`);
    return undefined;
  }
  return new Date(dateOnly && end ? ms + 86_400_000 : ms).toISOString();
}

export function mapLegacyBacktest(body: Record<string, unknown>): LegacyMapping {
  const problems: string[] = [];
  const params: Record<string, unknown> = {};

  const key = typeof body.strategy === 'string' ? body.strategy.trim().toLowerCase().replaceAll('_', '-') : undefined;
  const strategy = key !== undefined && Object.hasOwn(STRATEGY_ALIASES, key) ? STRATEGY_ALIASES[key] : undefined;
  if (strategy) params.strategy = strategy;
  else problems.push(`strategy ${JSON.stringify(body.strategy)} is unknown; give ma_crossover, volume_breakout or volume_zone_breakout`);

  params.exchange = typeof body.exchange === 'string' ? body.exchange.toLowerCase() : 'upbit';
  const markets = marketsOf(body, params.exchange, problems);
  if (markets) params.symbols = markets;

  for (const k of ['from', 'to'].filter((k) => k in body)) problems.push(`${k} is Wombat's field: the older body gives start_date and end_date, not both kinds`);
  const from = instantOf('start_date', body.start_date, false, problems);
  const to = instantOf('end_date', body.end_date, true, problems);
  if (from) params.from = from;
  if (to) params.to = to;
  if (from && to && from >= to) problems.push(`end_date ${String(body.end_date)} is before start_date ${String(body.start_date)}: both days are included, so the end may equal the start`);

  const tfKey = TIMEFRAME_KEYS.find((k) => body[k] !== undefined);
  if (tfKey) {
    const tf = typeof body[tfKey] === 'string' ? timeframeOf(body[tfKey] as string) : undefined;
    if (tf) params.timeframe = tf;
    else problems.push(`${tfKey} ${JSON.stringify(body[tfKey])} is not a timeframe; give one of ${TIMEFRAMES.join(', ')} (or 1d, 1h)`);
  }
  const cashKey = CASH_KEYS.find((k) => body[k] !== undefined);
  if (cashKey) params.initialCash = body[cashKey];
  const feeKey = FEE_KEYS.find((k) => body[k] !== undefined);
  if (feeKey) params.feeRate = body[feeKey];

  // Strategy parameters: nested (params, strategy_params) or at the top level, as the replaced system allowed.
  const options: Record<string, unknown> = {};
  const nested = [body.params, body.strategy_params].filter((p): p is Record<string, unknown> => p !== null && typeof p === 'object' && !Array.isArray(p));
  const loose = Object.fromEntries(Object.entries(body).filter(([k]) => !PASSED_ON.has(k)));
  for (const [k, v] of Object.entries(Object.assign({}, ...nested, loose) as Record<string, unknown>)) {
    const name = Object.hasOwn(OPTION_ALIASES, k) ? OPTION_ALIASES[k] : undefined;
    if (name) options[name] = v;
    else problems.push(`${k} is not a backtest parameter; strategy parameters are ${[...new Set(Object.keys(OPTION_ALIASES))].join(', ')}`);
  }
  if (Object.keys(options).length > 0) params.options = options;
  return problems.length > 0 ? { ok: false, problems } : { ok: true, params };
}

/** The task states the replaced system's clients know. */
export type LegacyStatus = 'queued' | 'running' | 'completed' | 'failed';

/**
 * A run's state as one of those: a run that waits for an attempt (held, queued, or retrying after a
 * failed one) is queued; one that ended without completing (failed, cancelled, skipped, missed) failed.
 */
export function legacyStatus(state: RunState): LegacyStatus {
  if (state === 'running' || state === 'completed') return state;
  if (state === 'waiting' || state === 'held' || state === 'queued' || state === 'retrying') return 'queued';
  return 'failed';
}

/** The replaced system's `error`: a message, or null. Wombat's structured error goes beside it as error_detail. */
export function legacyError(state: RunState, error: unknown): string | null {
  const message = error !== null && typeof error === 'object' && typeof (error as { message?: unknown }).message === 'string' ? (error as { message: string }).message : null;
  if (message !== null) return message;
  return legacyStatus(state) === 'failed' ? `the task ended ${state}` : null;
}
