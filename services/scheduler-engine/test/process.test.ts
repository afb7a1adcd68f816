import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { sql } from 'kysely';
import { childEnv, createEmptyTestDatabase, createTestDatabase } from '@wombat/core/testing';

const tdb = await createTestDatabase(t);
const main = path.resolve(import.meta.dirname, '../src/main.ts');

function run(env: Record<string, string>) {
  const child = spawn(process.execPath, [main], { env: childEnv({ LOG_FORMAT: 'json', ...env }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  return { child, exited, output: () => out };
}

t.test('starts, upserts the built-in schedules, and stops cleanly on SIGTERM', async (t) => {
  const p = run({ DATABASE_URL: tdb.url, SHUTDOWN_TIMEOUT_MS: '5000', ENABLE_SCHEDULER: 'true' });
  for (let i = 0; i < 200 && !p.output().includes('engine started'); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(p.output(), /engine started/);
  const names = await sql<{ name: string }>`select name from wombat.schedules where built_in order by name`.execute(tdb.db);
  t.same(names.rows.map((r) => r.name), ['collect-prices', 'collect-symbols', 'daily-candles']);
  // The collection reports: ordinary schedules, made because none of their name existed.
  const reports = await sql<{ name: string; built_in: boolean; cron: string; timezone: string; params: unknown }>`
    select name, built_in, cron, timezone, params from wombat.schedules where job = 'collection-report' order by name`.execute(tdb.db);
  t.same(reports.rows, [
    { name: 'monthly-report', built_in: false, cron: '0 8 1 * *', timezone: 'Asia/Seoul', params: { period: 'month', timezone: 'Asia/Seoul' } },
    { name: 'weekly-report', built_in: false, cron: '0 8 * * 1', timezone: 'Asia/Seoul', params: { period: 'week', timezone: 'Asia/Seoul' } },
  ]);
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0, 'exit 0 after a clean stop');
  t.match(p.output(), /engine stopped/);
  const engines = await sql<{ stopped: boolean }>`select stopped_at is not null as stopped from wombat.engines`.execute(tdb.db);
  t.same(engines.rows, [{ stopped: true }]);
});

t.test('bad configuration exits 1 naming each bad variable', async (t) => {
  const p = run({ DATABASE_URL: tdb.url, SCHEDULER_HOUR: '25', SCHEDULER_SYMBOLS: 'KRW BTC' });
  t.equal(await p.exited, 1);
  t.match(p.output(), /SCHEDULER_HOUR="25": must be an integer between 0 and 23/);
  t.match(p.output(), /SCHEDULER_SYMBOLS/);
});

t.test('an unmigrated database makes it exit 1 saying to run migrations', async (t) => {
  const empty = await createEmptyTestDatabase(t);
  const p = run({ DATABASE_URL: empty.url, SHUTDOWN_TIMEOUT_MS: '3000' });
  t.equal(await p.exited, 1);
  t.match(p.output(), /run migrations first/);
});
