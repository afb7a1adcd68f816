import type { IncomingMessage, ServerResponse } from 'node:http';
import { zipSync } from 'fflate';
import type { Timeframe } from '@wombat/core/jobs';
import { addPeriods, floorToTimeframe, type Candle } from '../candle.ts';
import { MASTER_TAIL_CHARS, type KisMarket } from '../kis-master.ts';
import { encodeCp949 } from './cp949.ts';
import { candleAt, hasCandle, type SeriesSpec } from './fake-data.ts';
import { applyFault, FaultQueue, newCounter, readBody, send, WindowCounter, type Counter, type Fault } from './fake-common.ts';

/** KIS domestic stock API as EXCHANGES.md §2 describes it, over seeded data. */
export interface FakeKisOptions {
  accountType?: 'real' | 'mock';
  /** Per app key; defaults 18 (real) and 1 (mock). */
  requestsPerSecond?: number;
  /** At most one token per app key in this interval (403 EGW00133). */
  tokenIntervalMs?: number;
  tokenTtlMs?: number;
  /** When set, only this app key and secret get a token. */
  credentials?: { appKey: string; appSecret: string };
  /**
   * KST time (HH:MM) from which a trading day's values are final; until then the day's
   * row (and its week's and month's) changes with the clock. Default 18:00, the end of
   * after-hours trading.
   */
  finalAtKst?: string;
}

export interface KisSymbolSpec extends SeriesSpec {
  name: string;
  market: KisMarket;
}

export interface FakeKisControls {
  symbols: KisSymbolSpec[];
  /** Ground truth: candles with start in [from, to) that are final by `now`, oldest first. */
  candles(symbol: string, tf: Timeframe, from: Date, to: Date): Candle[];
  inject(fault: Fault, count?: number): void;
  clearFaults(): void;
  /** Every token issued so far stops working (EGW00123). */
  expireTokens(): void;
  tokensIssued: number;
  requests: Counter;
  /** Calls refused with EGW00201 (over the app key's per-second limit), and token requests refused with EGW00133. */
  readonly refused: { EGW00201: number; EGW00133: number };
  masterZip(market: KisMarket): Uint8Array;
}

const DAY_MS = 86_400_000;
const PERIOD: Record<string, Timeframe> = { D: '1D', W: '1W', M: '1M' };

export function defaultKisSymbols(): KisSymbolSpec[] {
  const listed = new Date('2015-01-05T00:00:00Z');
  return [
    { symbol: '005930', name: '삼성전자', market: 'KOSPI', listedAt: listed, gapRatio: 0, basePrice: 70_000, tick: 100 },
    { symbol: '000660', name: 'SK하이닉스', market: 'KOSPI', listedAt: listed, gapRatio: 0, basePrice: 120_000, tick: 500 },
    { symbol: '035720', name: '카카오', market: 'KOSPI', listedAt: new Date('2017-07-10T00:00:00Z'), gapRatio: 0, basePrice: 50_000, tick: 50 },
    { symbol: '247540', name: '에코프로비엠', market: 'KOSDAQ', listedAt: new Date('2019-03-05T00:00:00Z'), gapRatio: 0, basePrice: 200_000, tick: 500 },
    { symbol: '091990', name: '셀트리온헬스케어', market: 'KOSDAQ', listedAt: listed, gapRatio: 0, basePrice: 60_000, tick: 100 },
  ];
}

/**
 * Trading days: weekdays, in KST. A row's date is its KST trading date; the day's row
 * appears when the session opens, 09:00 KST, which is 00:00 UTC of that date. A week or
 * month candle is dated by its first trading day.
 */
function isTradingDay(d: Date): boolean {
  const wd = d.getUTCDay();
  return wd !== 0 && wd !== 6;
}

/** The instant the candle of period `p` stops changing: its last trading day at `finalMinutes` KST. */
function finalAt(tf: Timeframe, p: Date, finalMinutes: number): Date {
  let last = new Date(addPeriods(tf, p, 1).getTime() - DAY_MS);
  while (last > p && !isTradingDay(last)) last = new Date(last.getTime() - DAY_MS);
  return new Date(last.getTime() + (finalMinutes - 9 * 60) * 60_000);
}

export function createFakeKis(opts: FakeKisOptions, now: () => Date): { handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>; controls: FakeKisControls } {
  const limit = opts.requestsPerSecond ?? (opts.accountType === 'mock' ? 1 : 18);
  const windows = new WindowCounter(() => 1000);
  const faults = new FaultQueue();
  const requests = newCounter();
  const symbols = defaultKisSymbols();
  const tokens = new Map<string, { appKey: string; expiresAt: number }>();
  const lastIssued = new Map<string, number>();
  let issued = 0;
  const [finalH, finalM] = (opts.finalAtKst ?? '18:00').split(':').map(Number) as [number, number];
  const finalMinutes = finalH * 60 + finalM;
  const refused = { EGW00201: 0, EGW00133: 0 };
  const envelope = (rt: string, msgCd: string, msg1: string, extra: Record<string, unknown> = {}) => JSON.stringify({ rt_cd: rt, msg_cd: msgCd, msg1, ...extra });

  /** Period candles (D/W/M) ending on or before `endDay`, newest first. */
  function periodRows(spec: KisSymbolSpec, tf: Timeframe, startDay: Date, endDay: Date, max = 100): Record<string, string>[] {
    const rows: Record<string, string>[] = [];
    for (let p = floorToTimeframe(tf, endDay); p >= floorToTimeframe(tf, startDay) && rows.length < max; p = addPeriods(tf, p, -1)) {
      if (!hasCandle(spec, tf, p)) continue;
      let first = p;
      while (!isTradingDay(first)) first = new Date(first.getTime() + DAY_MS);
      if (first > endDay || first < startDay || first >= addPeriods(tf, p, 1)) continue;
      const c = candleAt(spec, tf, p, now(), finalAt(tf, p, finalMinutes));
      const ymd = first.toISOString().slice(0, 10).replaceAll('-', '');
      rows.push({
        stck_bsop_date: ymd,
        stck_clpr: String(c.close),
        stck_oprc: String(c.open),
        stck_hgpr: String(c.high),
        stck_lwpr: String(c.low),
        acml_vol: String(Math.round(c.volume * 1000)),
        acml_tr_pbmn: String(Math.round(c.quoteVolume * 1000)),
        flng_cls_code: '00',
        prtt_rate: '0.00',
        mod_yn: 'N',
        prdy_vrss_sign: '3',
        prdy_vrss: '0',
        revl_issu_reas: '',
      });
    }
    return rows;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const master = /^\/master\/(kospi|kosdaq)_code\.mst\.zip$/.exec(url.pathname);
    if (master) {
      const zip = controls.masterZip(master[1]!.toUpperCase() as KisMarket);
      requests.total++;
      res.writeHead(200, { 'content-type': 'application/zip' });
      res.end(zip);
      return true;
    }
    if (url.pathname === '/oauth2/tokenP' && req.method === 'POST') {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(await readBody(req)) as Record<string, unknown>;
      } catch {
        // Answered below as a bad request.
      }
      const appKey = String(body.appkey ?? '');
      if (body.grant_type !== 'client_credentials' || !appKey || (opts.credentials && (appKey !== opts.credentials.appKey || body.appsecret !== opts.credentials.appSecret))) {
        send(res, requests, 403, JSON.stringify({ error_code: 'EGW00103', error_description: '유효하지 않은 AppKey입니다.' }));
        return true;
      }
      const t = Date.now();
      if (t - (lastIssued.get(appKey) ?? -Infinity) < (opts.tokenIntervalMs ?? 60_000)) {
        refused.EGW00133++;
        send(res, requests, 403, JSON.stringify({ error_code: 'EGW00133', error_description: '접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)' }));
        return true;
      }
      lastIssued.set(appKey, t);
      issued++;
      const ttlMs = opts.tokenTtlMs ?? DAY_MS;
      const token = `fake-token-${issued}-${t}`;
      tokens.set(token, { appKey, expiresAt: t + ttlMs });
      const kst = new Date(t + ttlMs + 9 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
      send(res, requests, 200, JSON.stringify({ access_token: token, access_token_token_expired: kst, token_type: 'Bearer', expires_in: Math.floor(ttlMs / 1000) }));
      return true;
    }
    if (url.pathname !== '/uapi/domestic-stock/v1/quotations/inquire-daily-itemchartprice') return false;
    if (applyFault(faults.next(), res, requests, '{"rt_cd":"0","msg_cd":"MCA00000","output2":[{"stck_bsop_date":')) return true;
    const auth = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    const tok = auth ? tokens.get(auth) : undefined;
    if (!tok || tok.appKey !== req.headers.appkey) return (send(res, requests, 500, envelope('1', 'EGW00121', '유효하지 않은 token 입니다.')), true);
    if (Date.now() >= tok.expiresAt) return (send(res, requests, 500, envelope('1', 'EGW00123', '기간이 만료된 token 입니다.')), true);
    if (!windows.take(tok.appKey, limit, Date.now()).ok) return (refused.EGW00201++, send(res, requests, 500, envelope('1', 'EGW00201', '초당 거래건수를 초과하였습니다.')), true);
    if (req.headers.tr_id !== 'FHKST03010100') return (send(res, requests, 500, envelope('1', 'EGW00203', 'tr_id가 올바르지 않습니다.')), true);
    const q = (k: string) => url.searchParams.get(k) ?? '';
    const tf = PERIOD[q('FID_PERIOD_DIV_CODE')];
    const d1 = /^\d{8}$/.test(q('FID_INPUT_DATE_1')) ? day(q('FID_INPUT_DATE_1')) : undefined;
    const d2 = /^\d{8}$/.test(q('FID_INPUT_DATE_2')) ? day(q('FID_INPUT_DATE_2')) : undefined;
    if (!tf || !d1 || !d2 || Number.isNaN(d1.getTime()) || Number.isNaN(d2.getTime())) {
      return (send(res, requests, 200, envelope('1', 'OPSQ2001', 'ERROR : INPUT_FIELD_NAME 을 확인하세요')), true);
    }
    const spec = symbols.find((s) => s.symbol === q('FID_INPUT_ISCD'));
    if (!spec) return (send(res, requests, 200, envelope('0', 'MCA00000', '정상처리 되었습니다.', { output1: { stck_prpr: '0', hts_kor_isnm: '' }, output2: [] })), true);
    const today = new Date(Math.floor(now().getTime() / DAY_MS) * DAY_MS);
    const rows = periodRows(spec, tf, d1, d2 < today ? d2 : today);
    const output1 = { stck_prpr: rows[0]?.stck_clpr ?? String(spec.basePrice), hts_kor_isnm: spec.name, stck_shrn_iscd: spec.symbol };
    send(res, requests, 200, envelope('0', 'MCA00000', '정상처리 되었습니다.', { output1, output2: rows }));
    return true;
  }

  const controls: FakeKisControls = {
    symbols,
    candles(symbol, tf, from, to) {
      const spec = symbols.find((s) => s.symbol === symbol)!;
      const last = new Date(Math.min(to.getTime() - DAY_MS, now().getTime()));
      return periodRows(spec, tf, from, last, Infinity)
        .map((r) => ({ time: floorToTimeframe(tf, day(r.stck_bsop_date!)), open: Number(r.stck_oprc), high: Number(r.stck_hgpr), low: Number(r.stck_lwpr), close: Number(r.stck_clpr), volume: Number(r.acml_vol), quoteVolume: Number(r.acml_tr_pbmn) }))
        .filter((c) => c.time >= from && finalAt(tf, c.time, finalMinutes) <= now() && c.time < to)
        .reverse();
    },
    inject: (fault, count) => faults.inject(fault, count),
    clearFaults: () => faults.clear(),
    expireTokens() {
      for (const t of tokens.values()) t.expiresAt = 0;
    },
    get tokensIssued() {
      return issued;
    },
    requests,
    refused,
    masterZip(market) {
      const tail = MASTER_TAIL_CHARS[market];
      const lines = symbols
        .filter((s) => s.market === market)
        .map((s) => `${s.symbol.padEnd(9)}KR7${s.symbol}003${s.name}ST${'0'.repeat(tail - 2)}`);
      const file = `${market.toLowerCase()}_code.mst`;
      return zipSync({ [file]: encodeCp949(lines.join('\n') + '\n') });
    },
  };
  return { handle, controls };
}

function day(ymd: string): Date {
  return new Date(`${ymd.slice(0, 4)}-${ymd.slice(4, 6)}-${ymd.slice(6, 8)}T00:00:00Z`);
}
