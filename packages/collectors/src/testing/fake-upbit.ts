import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Timeframe } from '@wombat/core/jobs';
import { candlesBefore, closedCandles, type SeriesSpec } from './fake-data.ts';
import { applyFault, FaultQueue, newCounter, send, WindowCounter, type Counter, type Fault } from './fake-common.ts';
import type { Candle } from '../candle.ts';

/** The Upbit quotation API as EXCHANGES.md §1 describes it, over seeded data. */
export interface FakeUpbitOptions {
  /** Requests per second per group (Upbit: 10). */
  requestsPerSecond?: number;
  windowMs?: number;
  /** Consecutive 429s (without a success between) after which the IP is banned with 418. */
  banAfter429s?: number;
  banMs?: number;
  /** Send Retry-After (seconds) with a 418, as a ban duration. Unverified for Upbit, so optional; default true. */
  retryAfterOn418?: boolean;
}

export interface UpbitMarketSpec extends SeriesSpec {
  koreanName: string;
  englishName: string;
}

export interface FakeUpbitControls {
  markets: UpbitMarketSpec[];
  /** Ground truth: closed candles with start in [from, to), oldest first. */
  candles(market: string, tf: Timeframe, from: Date, to: Date): Candle[];
  inject(fault: Fault, count?: number): void;
  clearFaults(): void;
  setLimit(requestsPerSecond: number): void;
  /** Lift a ban and forget past 429s. */
  unban(): void;
  readonly banned: boolean;
  requests: Counter;
  /** Requests by client address (Upbit counts per IP), and how many were 429 and 418. */
  byClient: Map<string, Counter>;
}

const MINUTE_UNITS: Record<string, Timeframe> = { '1': '1m', '3': '3m', '5': '5m', '10': '10m', '15': '15m', '30': '30m', '60': '1H', '240': '4H' };

export function defaultUpbitMarkets(now: Date): UpbitMarketSpec[] {
  const at = (iso: string) => new Date(iso);
  return [
    { symbol: 'KRW-BTC', koreanName: '비트코인', englishName: 'Bitcoin', listedAt: at('2017-09-25T00:00:00Z'), gapRatio: 0, basePrice: 90_000_000, tick: 1000 },
    { symbol: 'KRW-ETH', koreanName: '이더리움', englishName: 'Ethereum', listedAt: at('2017-09-25T00:00:00Z'), gapRatio: 0, basePrice: 4_000_000, tick: 1000 },
    { symbol: 'KRW-GAP', koreanName: '갭코인', englishName: 'Gappy', listedAt: at('2021-01-01T00:00:00Z'), gapRatio: 0.35, basePrice: 120, tick: 0.1 },
    { symbol: 'KRW-NEW', koreanName: '신규코인', englishName: 'Newly Listed', listedAt: new Date(Math.floor(now.getTime() / 3_600_000) * 3_600_000 - 2 * 86_400_000), gapRatio: 0, basePrice: 55, tick: 0.01 },
    { symbol: 'BTC-XRP', koreanName: '리플', englishName: 'XRP', listedAt: at('2018-01-01T00:00:00Z'), gapRatio: 0.05, basePrice: 0.00001, tick: 0.00000001 },
  ];
}

export function createFakeUpbit(opts: FakeUpbitOptions, now: () => Date): { handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean; controls: FakeUpbitControls } {
  let limit = opts.requestsPerSecond ?? 10;
  const windows = new WindowCounter(() => opts.windowMs ?? 1000);
  const faults = new FaultQueue();
  const requests = newCounter();
  // Upbit counts per IP: every process on one address shares these, whichever connection it uses.
  const consecutive429 = new Map<string, number>();
  const bannedUntil = new Map<string, number>();
  const byClient = new Map<string, Counter>();
  const markets = defaultUpbitMarkets(now());
  const find = (m: string) => markets.find((x) => x.symbol === m);
  const error = (res: ServerResponse, status: number, message: string) => send(res, requests, status, JSON.stringify({ error: { name: status, message } }));
  const err = (status: number, message: string) => JSON.stringify({ error: { name: status, message } });

  function handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    if (!url.pathname.startsWith('/v1/')) return false;
    const path = url.pathname.slice(4);
    let tf: Timeframe | undefined;
    let group: string;
    if (path === 'market/all') group = 'market';
    else if (path.startsWith('candles/')) {
      group = 'candles';
      const m = /^candles\/(?:minutes\/(\d+)|(days|weeks|months))$/.exec(path);
      if (!m) return (error(res, 404, 'Code not found'), true);
      if (m[1] !== undefined) {
        tf = MINUTE_UNITS[m[1]];
        if (!tf) return (error(res, 400, 'specified unit is not valid.'), true);
      } else tf = m[2] === 'days' ? '1D' : m[2] === 'weeks' ? '1W' : '1M';
    } else {
      send(res, requests, 404, JSON.stringify({ error: { name: 'not_found', message: 'no Route matched with those values' } }));
      return true;
    }
    const t = Date.now();
    const ip = req.socket.remoteAddress ?? 'unknown';
    let client = byClient.get(ip);
    if (!client) byClient.set(ip, (client = newCounter()));
    const counted = client;
    const reply = (status: number, body: string, headers: Record<string, string> = {}) => {
      counted.total++;
      counted.byStatus[status] = (counted.byStatus[status] ?? 0) + 1;
      send(res, requests, status, body, headers);
    };
    const banEnd = bannedUntil.get(ip) ?? 0;
    if (t < banEnd) {
      const left = Math.ceil((banEnd - t) / 1000);
      return (reply(418, JSON.stringify({ error: { name: 418, message: `banned for ${left} s` } }), opts.retryAfterOn418 === false ? {} : { 'retry-after': String(left) }), true);
    }
    if (applyFault(faults.next(), res, requests, '[{"market":"KRW-BTC","candle_date_time_utc":')) return true;
    const slot = windows.take(`${ip}|${group}`, limit, t);
    if (!slot.ok) {
      const n = (consecutive429.get(ip) ?? 0) + 1;
      consecutive429.set(ip, n);
      if (n >= (opts.banAfter429s ?? 20)) bannedUntil.set(ip, t + (opts.banMs ?? 30_000));
      reply(429, 'Too many API requests.');
      return true;
    }
    consecutive429.set(ip, 0);
    const headers = { 'remaining-req': `group=${group}; min=600; sec=${slot.remaining}` };
    if (group === 'market') {
      reply(200, JSON.stringify(markets.filter((m) => m.listedAt <= now()).map((m) => ({ market: m.symbol, korean_name: m.koreanName, english_name: m.englishName }))), headers);
      return true;
    }
    const market = url.searchParams.get('market');
    if (!market) return (reply(400, err(400, 'Missing request parameter error. Check the required parameters!')), true);
    const spec = find(market);
    if (!spec) return (reply(404, err(404, 'Code not found')), true);
    const countRaw = url.searchParams.get('count') ?? '1';
    if (!/^\d+$/.test(countRaw)) return (reply(400, err(400, 'Type mismatch error. Check the parameters type!')), true);
    const count = Math.min(200, Math.max(1, Number(countRaw)));
    const toRaw = url.searchParams.get('to');
    let to = now();
    if (toRaw !== null) {
      const normal = toRaw.replace(' ', 'T');
      to = new Date(/Z|[+-]\d\d:\d\d$/.test(normal) ? normal : `${normal}Z`);
      if (Number.isNaN(to.getTime())) return (reply(400, err(400, 'Invalid parameter. Check the given value!')), true);
    }
    const rows = candlesBefore(spec, tf!, to, count, now(), { includeOpen: toRaw === null }).map((c) => upbitRow(market, tf!, c));
    reply(200, JSON.stringify(rows), headers);
    return true;
  }

  const controls: FakeUpbitControls = {
    markets,
    candles: (market, tf, from, to) => closedCandles(find(market)!, tf, from, to, now()),
    inject: (fault, count) => faults.inject(fault, count),
    clearFaults: () => faults.clear(),
    setLimit: (n) => {
      limit = n;
    },
    unban: () => {
      bannedUntil.clear();
      consecutive429.clear();
    },
    get banned() {
      return [...bannedUntil.values()].some((until) => Date.now() < until);
    },
    requests,
    byClient,
  };
  return { handle, controls };
}

function naive(d: Date): string {
  return d.toISOString().slice(0, 19);
}

function upbitRow(market: string, tf: Timeframe, c: Candle): Record<string, unknown> {
  const row: Record<string, unknown> = {
    market,
    candle_date_time_utc: naive(c.time),
    candle_date_time_kst: naive(new Date(c.time.getTime() + 9 * 3_600_000)),
    opening_price: c.open,
    high_price: c.high,
    low_price: c.low,
    trade_price: c.close,
    timestamp: c.time.getTime() + 59_000,
    candle_acc_trade_price: c.quoteVolume,
    candle_acc_trade_volume: c.volume,
  };
  if (tf.endsWith('m') || tf.endsWith('H')) row.unit = { '1H': 60, '4H': 240 }[tf as '1H'] ?? Number(tf.slice(0, -1));
  if (tf === '1W' || tf === '1M') row.first_day_of_period = naive(c.time).slice(0, 10);
  return row;
}
