import t from 'tap';
import { ConfigError, bool, databaseFields, int, list, loadConfig, oneOf, processFields, timeZone } from '@wombat/core/platform';

const schema = {
  ...databaseFields,
  ...processFields,
  hour: int('SCHEDULER_HOUR', 'hour', { default: 9, min: 0, max: 23 }),
  enabled: bool('ENABLE_SCHEDULER', 'on/off', { default: true }),
  tz: timeZone('TZ', 'zone', { default: 'Asia/Seoul' }),
  symbols: list('SCHEDULER_SYMBOLS', 'symbols', { default: ['KRW-BTC', 'KRW-ETH'] }),
  storage: oneOf('STORAGE', 'where', ['parquet', 'postgres', 'both'], { default: 'parquet' }),
};

t.test('applies defaults when variables are unset or empty', async (t) => {
  const c = loadConfig(schema, { SCHEDULER_HOUR: '' });
  t.equal(c.hour, 9);
  t.equal(c.enabled, true);
  t.equal(c.tz, 'Asia/Seoul');
  t.same(c.symbols, ['KRW-BTC', 'KRW-ETH']);
  t.equal(c.databaseUrl, undefined);
  t.equal(c.shutdownTimeoutMs, 25000);
});

t.test('parses given values', async (t) => {
  const c = loadConfig(schema, {
    SCHEDULER_HOUR: '23',
    ENABLE_SCHEDULER: 'false',
    TZ: 'Europe/Berlin',
    SCHEDULER_SYMBOLS: ' KRW-XRP , KRW-SOL ',
    STORAGE: 'both',
    DATABASE_URL: 'postgres://u:p@db.internal:5432/wombat',
  });
  t.equal(c.hour, 23);
  t.equal(c.enabled, false);
  t.equal(c.tz, 'Europe/Berlin');
  t.same(c.symbols, ['KRW-XRP', 'KRW-SOL']);
  t.equal(c.storage, 'both');
  t.equal(c.databaseUrl, 'postgres://u:p@db.internal:5432/wombat');
});

t.test('reports every bad variable at once, naming each', async (t) => {
  const err = t.throws(() =>
    loadConfig(schema, {
      SCHEDULER_HOUR: '25',
      DATABASE_URL: 'mysql://nope',
      ENABLE_SCHEDULER: 'maybe',
      TZ: 'Mars/Olympus',
      STORAGE: 's3',
      SHUTDOWN_TIMEOUT_MS: '1.5',
    }),
  ) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.problems.length, 6);
  const text = err.message;
  for (const name of ['SCHEDULER_HOUR="25"', 'DATABASE_URL=(value hidden)', 'ENABLE_SCHEDULER', 'TZ="Mars/Olympus"', 'STORAGE', 'SHUTDOWN_TIMEOUT_MS']) {
    t.match(text, name);
  }
  t.match(text, /between 0 and 23/);
  t.notMatch(text, /mysql:\/\/nope/, 'a secret value is not echoed');
});

t.test('rejects a malformed postgres URL with a hint', async (t) => {
  const err = t.throws(() => loadConfig(schema, { DATABASE_URL: 'not a url' })) as ConfigError;
  t.match(err.problems[0], /DATABASE_URL.*postgres:\/\//);
  const noDb = t.throws(() => loadConfig(schema, { DATABASE_URL: 'postgres://host:5432' })) as ConfigError;
  t.match(noDb.problems[0], /must name a database/);
});
