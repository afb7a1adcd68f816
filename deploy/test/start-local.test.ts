import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, isProcessAlive, repoRoot } from '@wombat/core';

/** Every process still in the process group `pgid`. */
function groupMembers(pgid: number): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => Number(f[1]) === pgid)
    .map((f) => f.join(' '));
}

t.test('npm start brings up api, engine and worker on an embedded PostgreSQL, and Ctrl-C stops everything', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-start-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const apiPort = await freePort();
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    EMBEDDED_PG_DIR: path.join(dir, 'pg'),
    EMBEDDED_PG_PORT: String(await freePort()),
    API_PORT: String(apiPort),
    DATA_ROOT: path.join(dir, 'data'),
    LOG_FORMAT: 'json',
    SHUTDOWN_TIMEOUT_MS: '10000',
  };
  delete env.DATABASE_URL;
  delete env.WOMBAT_TEST_ADMIN_URL;

  // Its own process group, like a terminal's foreground job: Ctrl-C reaches the whole group.
  const child = spawn(process.execPath, ['deploy/start-local.ts'], { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += String(d)));
  child.stderr.on('data', (d: Buffer) => (output += String(d)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
  });

  let health: { status: number; body: Record<string, unknown> } | undefined;
  for (let i = 0; i < 600 && child.exitCode === null; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${apiPort}/health`);
      health = { status: res.status, body: (await res.json()) as Record<string, unknown> };
      if (res.status === 200) break;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  t.equal(health?.status, 200, `GET /health answers 200\n${output.slice(-3000)}`);
  t.match(JSON.stringify(health?.body), /database/i, 'health reports the database');

  // All three services announce themselves.
  for (const service of ['scheduler-engine', 'worker', 'api']) {
    for (let i = 0; i < 100 && !output.includes(`[${service}]`); i++) await sleep(100);
    t.match(output, `[${service}]`, `${service} is running with prefixed logs`);
  }
  const pgPid = Number(readFileSync(path.join(dir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
  t.ok(isProcessAlive(pgPid), 'embedded PostgreSQL is running');

  const stopStarted = Date.now();
  process.kill(-child.pid!, 'SIGINT');
  const { code } = await exited;
  t.equal(code, 0, `exit 0 after Ctrl-C\n${output.slice(-3000)}`);
  t.ok(Date.now() - stopStarted < 10000 + 5000, 'within the shutdown deadline');
  await sleep(200);
  t.same(groupMembers(child.pid!), [], 'no service process left behind');
  t.notOk(isProcessAlive(pgPid), 'no PostgreSQL left behind');
  t.notOk(existsSync(path.join(dir, 'pg', 'postmaster.pid')), 'PostgreSQL shut down cleanly');
});
