import { httpUrl, int, oneOf, optionalStr, resolveFromRoot, str, type ConfigOf, type Field, type Logger } from '@wombat/core/platform';
import { STORAGES } from '@wombat/core/jobs';
import type { Kysely } from 'kysely';
import type { CollectorsOptions } from './collectors.ts';
import { KRX_SESSION_CLOSE_DEFAULT, parseSessionClose } from './market-calendar.ts';

/** A KST session close, HH:MM, checked when the configuration loads. */
function sessionClose(env: string, doc: string): Field<string> {
  const base = str(env, doc, { default: KRX_SESSION_CLOSE_DEFAULT });
  return {
    ...base,
    parse(raw) {
      const v = base.parse(raw);
      parseSessionClose(v);
      return v;
    },
  };
}

/**
 * The variables collection reads. Services and scripts spread these into their
 * own schema (`{...databaseFields, ...collectorFields}`) and turn the result into
 * options with collectorsOptionsFromConfig.
 */
export const collectorFields = {
  dataRoot: str('DATA_ROOT', 'directory of the Parquet candle files (relative to the checkout)', { default: './data' }),
  storage: oneOf('STORAGE', 'where candles go: parquet, postgres or both', STORAGES, { default: 'parquet' }),
  upbitBaseUrl: httpUrl('UPBIT_BASE_URL', 'Upbit quotation API', { default: 'https://api.upbit.com' }),
  upbitRequestsPerSecond: int('UPBIT_REQUESTS_PER_SECOND', 'Upbit budget per group per IP (the exchange allows 10)', { default: 10, min: 1, max: 100 }),
  kisBaseUrl: httpUrl('KIS_BASE_URL', 'KIS open API (mock: https://openapivts.koreainvestment.com:29443)', { default: 'https://openapi.koreainvestment.com:9443' }),
  kisAppKey: optionalStr('KIS_APP_KEY', 'KIS app key; unset: KIS is not collected', { secret: true }),
  kisAppSecret: optionalStr('KIS_APP_SECRET', 'KIS app secret (set together with KIS_APP_KEY)', { secret: true }),
  kisAccountType: oneOf('KIS_ACCOUNT_TYPE', 'real (18 requests/s) or mock (1 request/s)', ['real', 'mock'], { default: 'real' }),
  kisRequestsPerSecond: int('KIS_REQUESTS_PER_SECOND', 'KIS budget per app key; 0: what KIS states for the account type', { default: 0, min: 0, max: 100 }),
  kisSessionClose: sessionClose('KIS_SESSION_CLOSE', 'KST time after which a KRX trading day (and a week or month at its last weekday) is closed and collected (HH:MM, 15:30-23:59)'),
  kisMasterKospiUrl: str('KIS_MASTER_KOSPI_URL', 'KOSPI symbol master zip, URL or local path', {
    default: 'https://new.real.download.dws.co.kr/common/master/kospi_code.mst.zip',
  }),
  kisMasterKosdaqUrl: str('KIS_MASTER_KOSDAQ_URL', 'KOSDAQ symbol master zip, URL or local path', {
    default: 'https://new.real.download.dws.co.kr/common/master/kosdaq_code.mst.zip',
  }),
  collectorRequestTimeoutMs: int('COLLECTOR_REQUEST_TIMEOUT_MS', 'deadline of one exchange request, in ms', { default: 10000, min: 100, max: 300000 }),
};

export type CollectorConfig = ConfigOf<typeof collectorFields>;

/** Problems with a collector config that single fields cannot see. */
export function collectorConfigProblems(config: CollectorConfig): string[] {
  if (Boolean(config.kisAppKey) !== Boolean(config.kisAppSecret)) return ['KIS_APP_KEY and KIS_APP_SECRET must be set together'];
  return [];
}

export function collectorsOptionsFromConfig(config: CollectorConfig, deps: { log: Logger; db?: Kysely<any>; sessionUrl?: string; now?: () => Date }): CollectorsOptions { // eslint-disable-line @typescript-eslint/no-explicit-any
  const master = (v: string) => (/^https?:\/\//i.test(v) ? v : resolveFromRoot(v));
  return {
    ...(deps.db ? { db: deps.db } : {}),
    ...(deps.sessionUrl ? { sessionUrl: deps.sessionUrl } : {}),
    dataRoot: resolveFromRoot(config.dataRoot),
    storage: config.storage,
    upbit: { baseUrl: config.upbitBaseUrl, requestsPerSecond: config.upbitRequestsPerSecond },
    ...(config.kisAppKey && config.kisAppSecret
      ? {
          kis: {
            baseUrl: config.kisBaseUrl,
            appKey: config.kisAppKey,
            appSecret: config.kisAppSecret,
            accountType: config.kisAccountType,
            ...(config.kisRequestsPerSecond > 0 ? { requestsPerSecond: config.kisRequestsPerSecond } : {}),
            masterUrls: { kospi: master(config.kisMasterKospiUrl), kosdaq: master(config.kisMasterKosdaqUrl) },
          },
        }
      : {}),
    kisSessionClose: config.kisSessionClose,
    log: deps.log,
    requestTimeoutMs: config.collectorRequestTimeoutMs,
    ...(deps.now ? { now: deps.now } : {}),
  };
}
