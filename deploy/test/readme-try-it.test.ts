import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, repoRoot } from '@wombat/core/platform';
import { readmeBlock } from './helpers.ts';

/**
 * "Try it" as a newcomer follows it: `npm start`, then the second terminal's lines
 * run as written with bash (`npx wombat`: node_modules/.bin is not on the PATH), the
 * api on a port of the test's own and its token file in a temporary directory.
 */
t.setTimeout(600_000);
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

t.test('the lines after npm start run a canary to completion, and status is healthy', { skip: have('curl') && have('jq') ? false : 'needs curl and jq' }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-try-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const apiPort = await freePort();
  const tokenFile = path.join(dir, 'api-admin-token');
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    PATH: (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules')).join(':'),
    EMBEDDED_PG_DIR: path.join(dir, 'pg'),
    EMBEDDED_PG_PORT: String(await freePort()),
    API_PORT: String(apiPort),
    API_ADMIN_TOKEN_FILE: tokenFile,
    DATA_ROOT: path.join(dir, 'data'),
    LOG_FORMAT: 'json',
  };
  for (const name of ['DATABASE_URL', 'WOMBAT_TEST_ADMIN_URL', 'API_ADMIN_TOKEN', 'ALERT_WORKERS_WARNING', 'ALERT_WORKERS_CRITICAL']) delete env[name];

  const start = readmeBlock('## Try it')[0]!;
  t.match(start, /^npm ci && npm start\b/);
  // npm ci ran already (this checkout is installed): `npm start` as the block has it.
  const launcher = spawn('npm', ['start'], { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  launcher.stdout.on('data', (d: Buffer) => (out += String(d)));
  launcher.stderr.on('data', (d: Buffer) => (out += String(d)));
  const exited = new Promise<number | null>((resolve) => launcher.on('exit', resolve));
  t.teardown(() => {
    try {
      process.kill(-launcher.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  for (let i = 0; i < 1200 && launcher.exitCode === null && !out.includes('Wombat is running'); i++) await sleep(100);
  t.match(out, /Wombat is running/, 'npm start is up');

  const lines = readmeBlock('Then, in a second terminal');
  t.equal(lines.length, 5);
  const script = ['set -eu', ...lines.map((l) => l.replace(/\s+#.*$/, ''))]
    .join('\n')
    .replaceAll('localhost:8000', `127.0.0.1:${apiPort}`)
    .replaceAll('.wombat/api-admin-token', tokenFile);
  const ran = spawnSync('bash', ['-c', script], { cwd: repoRoot, env, encoding: 'utf8', timeout: 300_000 });
  t.equal(ran.status, 0, 'every line succeeds (status exits 0: healthy)', { stdout: ran.stdout, stderr: ran.stderr });
  t.match(ran.stdout, /^state:\s+completed$/m, 'the task completed');
  t.match(ran.stdout, /^completed$/m, 'and the api says so');
  t.match(ran.stdout, /^healthy$/m, 'status is healthy');

  const dashboard = /The dashboard is at (http:\/\/127\.0\.0\.1:8000\/)/.exec(readFileSync(path.join(repoRoot, 'README.md'), 'utf8'))?.[1];
  t.ok(dashboard, 'the README gives the dashboard\'s address');
  const page = await fetch(dashboard!.replace('8000', String(apiPort)));
  t.equal(page.status, 200);
  t.match(await page.text(), /<html/i, 'it serves the dashboard');

  // Ctrl-C: npm itself then ends by the signal; the launcher says how Wombat stopped.
  process.kill(-launcher.pid!, 'SIGINT');
  await exited;
  t.match(out, /"exitCode":0,"msg":"Wombat stopped"/, 'Ctrl-C stops it cleanly');
});
