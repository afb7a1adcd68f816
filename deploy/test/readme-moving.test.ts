/**
 * The README's switch from the old setup, run as written: the old `.env`'s POSTGRES_* as
 * the only database settings (no DATABASE_URL), the old pipeline's candle files imported,
 * the old backtest client's request without a token from a trusted network, and an old
 * job name. Only the paths and the api's port change.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readCandlesParquet } from '@wombat/collectors';
import { writeLegacyHourlyFile } from '@wombat/collectors/testing';
import { repoRoot } from '@wombat/core/platform';
import { childEnv, createTestDatabase } from '@wombat/core/testing';
import { readmeBlock, startApiProcess } from './helpers.ts';

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';
const H = 3_600_000;
const start = Date.UTC(2025, 0, 1);

const oldFile = (file: string, n: number) => writeLegacyHourlyFile(file, n, start);

t.test('the README\'s switch from the old setup works line by line', { skip: have('curl') || ci ? false : 'needs curl' }, async (t) => {
  const tdb = await createTestDatabase(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-readme-moving-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const oldData = path.join(dir, 'pipeline', 'data');
  await oldFile(path.join(oldData, 'KRW-BTC', '1H', '2025.parquet'), 24);
  await oldFile(path.join(oldData, 'KRW-ETH', '1H', '2025.parquet'), 12);
  const dataRoot = path.join(dir, 'data');

  // The old scheduler engine's .env, and nothing else about the database.
  const u = new URL(tdb.url);
  const oldEnv = {
    POSTGRES_SERVER: u.hostname,
    POSTGRES_PORT: u.port || '5432',
    POSTGRES_DB: u.pathname.slice(1),
    POSTGRES_USER: decodeURIComponent(u.username),
    POSTGRES_PASSWORD: decodeURIComponent(u.password),
    REDIS_HOST: 'redis.internal',
    TZ: 'UTC',
    DATA_ROOT: dataRoot,
  };
  const api = await startApiProcess(t, { ...oldEnv, API_ADMIN_TOKEN: randomBytes(24).toString('hex'), API_TRUSTED_NETWORKS: '127.0.0.1/32' });
  const { port } = api;
  const out = api.output();
  t.match(out, /"msg":"api listening"/, `the api is up on the old settings alone\n${out.slice(-2000)}`);
  t.match(out, /REDIS_HOST/, 'the old Redis setting is named in a warning');

  const lines = readmeBlock('The switch, in order');
  t.ok(lines.filter((l) => l.startsWith('npx wombat')).length >= 4, 'the block has the wombat lines');
  const script = ['set -eu', ...lines]
    .join('\n')
    .replaceAll('/srv/pipeline/data', oldData)
    .replaceAll('localhost:8000', `127.0.0.1:${port}`)
    .replaceAll('curl -s ', 'curl -sf ');
  const run = spawnSync('bash', ['-c', script], { cwd: repoRoot, env: childEnv(oldEnv), encoding: 'utf8', timeout: 180_000 });
  t.equal(run.status, 0, 'every line succeeds', { stdout: run.stdout, stderr: run.stderr });
  t.match(run.stdout, /^KRW-BTC\s+1H\s+1\s+24\s+0\s+0\s+stored$/m, 'the import reports each series');
  t.match(run.stdout, /"task_id":"[0-9a-f-]{36}","status":"queued"/, 'the old client\'s request is accepted');

  const stored = await readCandlesParquet(dataRoot, { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H' }, new Date(start), new Date(start + 24 * H));
  t.equal(stored.length, 24, 'the old candles are in DATA_ROOT');
  const runs = await tdb.sql<{ job: string; params: { symbols?: string[]; exchange?: string } }[]>`select job, params from wombat.runs order by created_at`;
  t.match(runs, [
    { job: 'backtest', params: { exchange: 'upbit', symbols: ['KRW-BTC', 'KRW-ETH'] } },
    { job: 'crawl-prices' },
  ]);

  api.stop();
  t.equal(await api.exited, 0, 'the api stops cleanly');
});
