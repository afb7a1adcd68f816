import t from 'tap';
import { Writable } from 'node:stream';
import { ConfigError, createLogger, databaseFields, loadConfig, obsoleteSettings, processFields, warnObsoleteSettings } from '@wombat/core/platform';

const schema = { ...databaseFields, ...processFields };
const PASSWORD = 'p@ss:w/rd%41?#';
const OLD = { POSTGRES_SERVER: 'db.internal', POSTGRES_PORT: '6543', POSTGRES_DB: 'scheduler', POSTGRES_USER: 'app', POSTGRES_PASSWORD: PASSWORD };

t.test('builds DATABASE_URL from the old POSTGRES_* when it is unset, the password URL-encoded', async (t) => {
  const c = loadConfig(schema, OLD);
  const url = new URL(c.databaseUrl!);
  t.equal(url.protocol, 'postgres:');
  t.equal(url.hostname, 'db.internal');
  t.equal(url.port, '6543');
  t.equal(url.pathname, '/scheduler');
  t.equal(decodeURIComponent(url.username), 'app');
  t.equal(decodeURIComponent(url.password), PASSWORD, 'the password comes back whole');
  t.notOk(c.databaseUrl!.includes(PASSWORD), 'never written raw into the URL');
  t.equal(c.databaseUrl, 'postgres://app:p%40ss%3Aw%2Frd%2541%3F%23@db.internal:6543/scheduler');
});

t.test('POSTGRES_PORT defaults to 5432 and POSTGRES_PASSWORD may be left out', async (t) => {
  const c = loadConfig(schema, { POSTGRES_SERVER: '127.0.0.1', POSTGRES_DB: 'wombat', POSTGRES_USER: 'postgres' });
  t.equal(c.databaseUrl, 'postgres://postgres@127.0.0.1:5432/wombat');
  const v6 = loadConfig(schema, { POSTGRES_SERVER: '::1', POSTGRES_DB: 'wombat', POSTGRES_USER: 'postgres' });
  t.equal(v6.databaseUrl, 'postgres://postgres@[::1]:5432/wombat', 'an IPv6 address in brackets');
});

t.test('DATABASE_URL wins over POSTGRES_*, with one warning saying they are ignored', async (t) => {
  const env = { ...OLD, DATABASE_URL: 'postgres://u@other:5432/wombat' };
  t.equal(loadConfig(schema, env).databaseUrl, 'postgres://u@other:5432/wombat');
  t.same(obsoleteSettings(env).map((s) => s.message), ['POSTGRES_SERVER, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD ignored: DATABASE_URL is set and wins']);
});

t.test('only some POSTGRES_* set: one error naming what is missing, never the password', async (t) => {
  const err = t.throws(() => loadConfig(schema, { POSTGRES_SERVER: 'db.internal', POSTGRES_PASSWORD: PASSWORD })) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.problems.length, 1);
  t.match(err.message, /^invalid configuration: DATABASE_URL=\(unset\): is not set, and the old settings POSTGRES_SERVER, POSTGRES_PASSWORD are set without POSTGRES_DB, POSTGRES_USER/);
  t.notMatch(err.message, 'p@ss', 'the password stays out of the message');
  const port = t.throws(() => loadConfig(schema, { ...OLD, POSTGRES_PORT: 'five' })) as ConfigError;
  t.match(port.message, /POSTGRES_PORT="five" is not a port/);
  t.notMatch(port.message, 'p@ss');
});

t.test('settings that no longer mean anything get one warning line each, naming what replaced them', async (t) => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  const log = createLogger({ name: 'test', level: 'info', format: 'json', isTty: false, destination });
  const env = { ...OLD, REDIS_HOST: 'redis', REDIS_PORT: '6379', RQ_QUEUE: 'default', LOG_FILE: '/var/log/app.log', LOG_DIR: '/var/log', LOG_PATH: '/x', LOG_LEVEL: 'info', REDDIT_SUBREDDITS: 'bitcoin', EMPTY_ONE: '' };
  warnObsoleteSettings(env, log);
  log.flush();
  await new Promise((resolve) => setImmediate(resolve));
  const records = lines.map((l) => JSON.parse(l) as { level: number; variable: string; msg: string });
  t.same(records.map((r) => r.variable), ['LOG_DIR', 'LOG_FILE', 'LOG_PATH', 'REDIS_HOST', 'REDIS_PORT', 'RQ_QUEUE'], 'one line each; LOG_LEVEL and REDDIT_* are current settings');
  t.ok(records.every((r) => r.level === 40), 'warnings');
  t.equal(records.find((r) => r.variable === 'REDIS_HOST')!.msg, 'REDIS_HOST is no longer used: the queue lives in PostgreSQL (DATABASE_URL)');
  t.equal(records.find((r) => r.variable === 'LOG_FILE')!.msg, 'LOG_FILE is no longer used: services log to stdout; read them with journalctl');
  t.match(records.find((r) => r.variable === 'RQ_QUEUE')!.msg, /pg-boss jobs in PostgreSQL/);
  t.notOk(lines.join('\n').includes('p@ss'), 'no value is logged');
  t.notOk(lines.join('\n').includes('/var/log'), 'no value is logged');
});
