import t from 'tap';
import path from 'node:path';
import { ConfigError, ValidationError, loadConfig, repoRoot } from '@wombat/core/platform';
import { testLogger } from '@wombat/core/testing';
import { collectorConfigProblems, collectorFields, collectorsOptionsFromConfig, createCollectors } from '@wombat/collectors';

t.test('defaults give Upbit with Parquet under ./data and no KIS', async (t) => {
  const config = loadConfig(collectorFields, {});
  const opts = collectorsOptionsFromConfig(config, { log: testLogger() });
  t.equal(opts.dataRoot, path.join(repoRoot, 'data'));
  t.equal(opts.storage, 'parquet');
  t.same(opts.upbit, { baseUrl: 'https://api.upbit.com', requestsPerSecond: 10 });
  t.equal(opts.kis, undefined);
});

t.test('KIS settings become client options with master files as URLs or paths', async (t) => {
  const config = loadConfig(collectorFields, {
    KIS_APP_KEY: 'k',
    KIS_APP_SECRET: 's',
    KIS_ACCOUNT_TYPE: 'mock',
    KIS_MASTER_KOSPI_URL: 'masters/kospi.zip',
    STORAGE: 'both',
    DATA_ROOT: '/srv/wombat/data',
  });
  t.same(collectorConfigProblems(config), []);
  const opts = collectorsOptionsFromConfig(config, { log: testLogger() });
  t.equal(opts.dataRoot, '/srv/wombat/data');
  t.match(opts.kis, { appKey: 'k', appSecret: 's', accountType: 'mock', masterUrls: { kospi: path.join(repoRoot, 'masters/kospi.zip'), kosdaq: /^https:\/\// } });
  t.equal(opts.kis!.requestsPerSecond, undefined, 'the account type decides the budget');
});

t.test('bad values are all reported at once', async (t) => {
  const err = (() => {
    try {
      loadConfig(collectorFields, { STORAGE: 'disk', UPBIT_BASE_URL: 'ftp://x', KIS_ACCOUNT_TYPE: 'paper', UPBIT_REQUESTS_PER_SECOND: '0' });
    } catch (e) {
      return e;
    }
  })() as ConfigError;
  t.type(err, ConfigError);
  t.equal(err.problems.length, 4);
  t.same(collectorConfigProblems(loadConfig(collectorFields, { KIS_APP_KEY: 'k' })), ['KIS_APP_KEY and KIS_APP_SECRET must be set together']);
});

t.test('fetchCandles refuses bad parameters with a ValidationError naming the field', async (t) => {
  const c = createCollectors({ dataRoot: '/nonexistent', storage: 'parquet', upbit: { baseUrl: 'http://127.0.0.1:9' }, log: testLogger() });
  const err = await c.fetchCandles({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '2H' as '1H' }, {}).catch((e: unknown) => e);
  t.type(err, ValidationError);
  t.match((err as Error).message, /params\.timeframe/);
});
