import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, isProcessAlive, repoRoot } from '@wombat/core/platform';

t.test('DATABASE_URL=embedded: migrate, then a service started on its own, each with the embedded server, leaving none running', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-optin-'));
  // As root the server runs as another user, who must reach the directory.
  spawnSync('chmod', ['0755', dir]);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pgDir = path.join(dir, 'pg');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LOG_FORMAT: 'json', DATABASE_URL: 'embedded', EMBEDDED_PG_DIR: pgDir, EMBEDDED_PG_PORT: String(await freePort()), SHUTDOWN_TIMEOUT_MS: '10000' };

  const migrate = spawnSync(process.execPath, ['deploy/migrate.ts'], { cwd: repoRoot, env, encoding: 'utf8', timeout: 120_000 });
  t.equal(migrate.status, 0, 'migrate exits 0', { output: migrate.stderr + migrate.stdout });
  t.match(migrate.stdout, /"msg":"database ready"/);
  t.notOk(existsSync(path.join(pgDir, 'postmaster.pid')), 'migrate stopped the server it started');

  const engine = spawn(process.execPath, ['src/main.ts'], { cwd: path.join(repoRoot, 'services/scheduler-engine'), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  engine.stdout.on('data', (d: Buffer) => (out += String(d)));
  engine.stderr.on('data', (d: Buffer) => (out += String(d)));
  t.teardown(() => engine.kill('SIGKILL'));
  const exit = new Promise<number | null>((resolve) => engine.on('exit', resolve));
  for (let i = 0; i < 900 && engine.exitCode === null && !out.includes('"msg":"engine started"'); i++) await sleep(100);
  t.match(out, /"msg":"engine started"/, 'the engine runs on the embedded server');
  const pgPid = Number(readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  t.ok(isProcessAlive(pgPid));
  engine.kill('SIGTERM');
  t.equal(await exit, 0, 'the engine exits 0 on SIGTERM', { output: out.slice(-2000) });
  t.notOk(isProcessAlive(pgPid), 'the engine stopped the server it started');
});
