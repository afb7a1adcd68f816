import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, isProcessAlive, repoRoot } from '@wombat/core/platform';
import { startFakeExchange } from '@wombat/collectors/testing';

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
    ALERT_EVALUATE_INTERVAL_MS: '300',
  };
  delete env.DATABASE_URL;
  delete env.WOMBAT_TEST_ADMIN_URL;
  delete env.ALERT_WORKERS_WARNING;
  delete env.ALERT_WORKERS_CRITICAL;

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
  for (let i = 0; i < 600 && !output.includes('Wombat is running'); i++) await sleep(100);
  t.match(output, /Wombat is running; Ctrl-C stops it/, 'it says it is running, once every service is');
  t.match(JSON.stringify(health?.body), /database/i, 'health reports the database');

  // All three services announce themselves.
  for (const service of ['scheduler-engine', 'worker', 'api']) {
    for (let i = 0; i < 100 && !output.includes(`[${service}]`); i++) await sleep(100);
    t.match(output, `[${service}]`, `${service} is running with prefixed logs`);
  }
  const pgPid = Number(readFileSync(path.join(dir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
  t.ok(isProcessAlive(pgPid), 'embedded PostgreSQL is running');

  // A fresh start raises no alert about itself: once the worker beats, the evaluations
  // (every 300 ms here) after that find nothing to report.
  for (let i = 0; i < 600; i++) {
    const workers = (await (await fetch(`http://127.0.0.1:${apiPort}/api/workers`)).json()) as { workers: { state: string }[] };
    if (workers.workers.some((w) => w.state === 'alive')) break;
    await sleep(100);
  }
  // Evaluations log only changes: give them ten rounds to raise one.
  await sleep(3000);
  const alerts = (await (await fetch(`http://127.0.0.1:${apiPort}/api/alerts`)).json()) as { open: number; alerts: { subject: string; state: string }[] };
  t.equal(alerts.open, 0, `no alert open on a fresh start: ${JSON.stringify(alerts.alerts.map((a) => a.subject))}`);
  t.notMatch(output, /too few live workers/);

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

/** `npm start` in its own process group, with its output collected. */
function launch(t: { teardown(fn: () => unknown): void }, env: Record<string, string>) {
  const child = spawn(process.execPath, ['deploy/start-local.ts'], { cwd: repoRoot, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const run = { child, output: '', exited: undefined as unknown as Promise<number | null> };
  child.stdout.on('data', (d: Buffer) => (run.output += String(d)));
  child.stderr.on('data', (d: Buffer) => (run.output += String(d)));
  run.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
  });
  return run;
}

/** A node process to its end, without blocking this one (the launcher's pipes must keep draining). */
async function runNode(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += String(d)));
  child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

async function healthStatus(apiPort: number): Promise<number | undefined> {
  try {
    return (await fetch(`http://127.0.0.1:${apiPort}/health`)).status;
  } catch {
    return undefined;
  }
}

t.test('a collector script and a second npm start borrow the running embedded PostgreSQL and leave it running; the launcher stops, saying why, when it dies', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-start-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fake = await startFakeExchange();
  t.teardown(() => fake.close());
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

  const first = launch(t, env);
  for (let i = 0; i < 600 && first.child.exitCode === null && (await healthStatus(apiPort)) !== 200; i++) await sleep(100);
  t.equal(await healthStatus(apiPort), 200, `npm start is up\n${first.output.slice(-3000)}`);
  const pgPid = Number(readFileSync(path.join(dir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);

  // As "Collect by hand" in packages/collectors/README.md has it, beside the running npm start.
  const script = await runNode(['packages/collectors/scripts/collect-symbols.ts', '--exchanges', 'upbit'], { ...env, DATABASE_URL: 'embedded', UPBIT_BASE_URL: fake.url, LOG_LEVEL: 'info' });
  t.equal(script.code, 0, script.stderr + script.stdout);
  t.match(script.stdout, /^upbit: 5 symbols/m);
  t.match(script.stdout, /"owned":false|borrowing the embedded PostgreSQL/, 'the script says it borrows the server');
  t.ok(isProcessAlive(pgPid), 'the script left the database running');
  t.equal(await healthStatus(apiPort), 200, 'npm start is still healthy after the script');

  // The wombat command finds the running npm start's database by itself, and leaves it be.
  const status = await runNode(['packages/cli/src/main.ts', 'status', '--json'], env);
  t.not(status.code, 2, `no DATABASE_URL needed beside npm start: ${status.stderr}`);
  t.match(JSON.parse(status.stdout), { engines: [{ state: 'running' }] }, 'it reads the running engine');
  t.ok(isProcessAlive(pgPid), 'the wombat command left the database running');

  // A second npm start in the same checkout whose worker fails its configuration.
  const second = launch(t, { ...env, API_PORT: String(await freePort()), STORAGE: 's3' });
  t.equal(await second.exited, 1, second.output.slice(-3000));
  t.match(second.output, /STORAGE/, 'it names the bad setting');
  t.notMatch(second.output, /Wombat is running/, 'and never said it was running');
  t.match(second.output, /service failed to start; stopping Wombat/);
  t.ok(isProcessAlive(pgPid), 'the failed second npm start left the database running');
  t.equal(await healthStatus(apiPort), 200, 'the first npm start is still healthy');
  t.equal(first.child.exitCode, null);

  // The database dies under the first npm start (fast shutdown, as `pg_ctl stop` does).
  process.kill(pgPid, 'SIGINT');
  t.equal(await first.exited, 1, first.output.slice(-3000));
  t.match(first.output, /the embedded PostgreSQL stopped under Wombat; stopping the services/);
  await sleep(200);
  t.same(groupMembers(first.child.pid!), [], 'no service process left behind');
});
