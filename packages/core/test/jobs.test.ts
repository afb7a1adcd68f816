import t from 'tap';
import { checkJobParams, JOB_TYPES, jobDefaults, jobParamSchemas } from '@wombat/core/jobs';

t.test('every job type has a schema and defaults', async (t) => {
  t.same(Object.keys(jobDefaults).sort(), [...JOB_TYPES].sort());
  t.same(Object.keys(jobParamSchemas).sort(), [...JOB_TYPES].sort());
});

t.test('accepts valid parameters', async (t) => {
  t.same(checkJobParams('fetch-candles', { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 30 }), {
    ok: true,
    value: { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 30 },
  });
  t.equal(checkJobParams('canary', undefined).ok, true, 'no params means {}');
  t.equal(checkJobParams('collect-prices', { exchanges: ['kis'], market: 'KOSPI', timeframes: ['1D'] }).ok, true);
});

t.test('names the field and what it must be', async (t) => {
  const bad = checkJobParams('fetch-candles', { exchange: 'binance', symbol: 'KRW BTC', timeframe: '2H', daysBack: 0, extra: 1 });
  t.equal(bad.ok, false);
  const text = bad.ok ? '' : bad.problems.join('\n');
  t.match(text, /params\.exchange must be exchange: upbit or kis/);
  t.match(text, /params\.timeframe must be timeframe: 1m/);
  t.match(text, /params\.symbol/);
  t.match(text, /params has unknown field extra/);
  t.equal(text.split('unknown field').length, 2, 'an unknown field is reported once');
  const range = checkJobParams('fetch-candles', { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 0 });
  t.match(range.ok ? '' : range.problems.join('\n'), /params\.daysBack must be >= 1/);
});

t.test('rejects unknown jobs and inverted ranges', async (t) => {
  const unknown = checkJobParams('mine-bitcoin', {});
  t.match(unknown.ok ? '' : unknown.problems[0], /job "mine-bitcoin" is unknown; known jobs: collect-symbols/);
  const inverted = checkJobParams('backtest', {
    strategy: 'ma-crossover',
    exchange: 'upbit',
    symbols: ['KRW-BTC'],
    from: '2026-02-01T00:00:00Z',
    to: '2026-01-01T00:00:00Z',
  });
  t.match(inverted.ok ? '' : inverted.problems[0], /from must be earlier than params.to/);
});
