import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, repoRoot } from '@wombat/core/platform';
import { childEnv, createTestDatabase } from '@wombat/core/testing';

/**
 * The old scheduler engine's `.env` as it was: POSTGRES_* instead of DATABASE_URL, plus
 * Redis, RQ and log-file settings that mean nothing to Wombat. The api starts on it and
 * answers /health, the CLI reads the same database, and each dead setting earns one warning.
 */
t.setTimeout(120_000);

// Every character a URL gives a meaning to: the URL Wombat builds must encode each.
const PASSWORD = 'old p@ss:w/rd%41?#&=';

async function oldEnv(t: { teardown(fn: () => unknown): void }) {
  const db = await createTestDatabase(t, { poolSize: 1 });
  // The test database's own role gets a password full of URL characters (checked where the server asks for one).
  await db.sql.unsafe(`alter role current_user password '${PASSWORD}'`);
  const url = new URL(db.url);
  return {
    POSTGRES_SERVER: url.hostname,
    POSTGRES_PORT: url.port || '5432',
    POSTGRES_DB: db.name,
    POSTGRES_USER: decodeURIComponent(url.username),
    POSTGRES_PASSWORD: PASSWORD,
    REDIS_HOST: 'localhost',
    REDIS_PORT: '6379',
    RQ_QUEUE_NAME: 'scheduler',
    LOG_FILE: '/var/log/scheduler/engine.log',
  };
}

const warned = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; variable?: string; msg: string })
    .filter((r) => r.level === 40 && r.variable !== undefined);

t.test('the api starts with only the old POSTGRES_* settings, becomes healthy and warns once per dead setting', async (t) => {
  const port = await freePort();
  const env = childEnv({ ...(await oldEnv(t)), LOG_FORMAT: 'json', API_PORT: String(port), API_ADMIN_TOKEN: 'legacy-env-admin-token-0123456789' });
  const child = spawn(process.execPath, ['src/main.ts'], { cwd: path.join(repoRoot, 'services/api'), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  let health = 0;
  for (let i = 0; i < 600 && child.exitCode === null && health !== 200; i++) {
    health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0);
    if (health !== 200) await sleep(100);
  }
  t.equal(health, 200, 'GET /health answers 200', { output: out.slice(-3000) });
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'stops cleanly');
  const warnings = warned(out);
  t.same(warnings.map((w) => w.variable).sort(), ['LOG_FILE', 'REDIS_HOST', 'REDIS_PORT', 'RQ_QUEUE_NAME'], 'one warning line each');
  t.equal(warnings.find((w) => w.variable === 'REDIS_HOST')!.msg, 'REDIS_HOST is no longer used: the queue lives in PostgreSQL (DATABASE_URL)');
  t.equal(warnings.find((w) => w.variable === 'LOG_FILE')!.msg, 'LOG_FILE is no longer used: services log to stdout; read them with journalctl');
  t.notOk(out.includes('p@ss') || out.includes(encodeURIComponent(PASSWORD)), 'the password is in no log line');
});

t.test('the wombat CLI reads the old settings too', async (t) => {
  const env = childEnv({ ...(await oldEnv(t)), HOME: process.env.HOME ?? '/tmp' });
  const res = spawnSync(path.join(repoRoot, 'packages/cli/bin/wombat'), ['runs', '--json'], { env, encoding: 'utf8', timeout: 60_000 });
  t.equal(res.status, 0, res.stderr);
  t.same(JSON.parse(res.stdout), { runs: [], total: 0, limit: 20 }, 'an empty run history, read from the database POSTGRES_* name');
  t.equal(res.stderr.split('\n').filter((l) => /is no longer used/.test(l)).length, 4, 'one warning line per dead setting');
  t.notOk(res.stderr.includes('p@ss'), 'the password is not printed');
});

t.test('only some POSTGRES_* set: a service exits 1 naming what is missing', async (t) => {
  const env = childEnv({ POSTGRES_SERVER: '127.0.0.1', POSTGRES_PASSWORD: PASSWORD, LOG_FORMAT: 'json' });
  const res = spawnSync(process.execPath, ['src/main.ts'], { cwd: path.join(repoRoot, 'services/worker'), env, encoding: 'utf8', timeout: 60_000 });
  t.equal(res.status, 1, res.stderr + res.stdout);
  t.match(res.stderr, /DATABASE_URL=\(unset\): is not set, and the old settings POSTGRES_SERVER, POSTGRES_PASSWORD are set without POSTGRES_DB, POSTGRES_USER/);
  t.notOk((res.stderr + res.stdout).includes('p@ss'), 'the password is not printed');
});
