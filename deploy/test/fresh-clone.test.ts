/**
 * The README's first commands on a fresh clone, as root and as an ordinary user:
 * `npm start` (then Ctrl-C) and `npm test`, from a tree of the committed files with
 * no `.wombat` at all. node_modules is linked from this checkout instead of
 * installed again (the install is not what is under test, and takes minutes).
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, isProcessAlive } from '@wombat/core/platform';
import { freshTree } from './helpers.ts';

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

interface Runner {
  label: string;
  uid?: number;
  gid?: number;
}

const isRoot = process.getuid?.() === 0;
const runners: Runner[] = [];
if (isRoot) {
  runners.push({ label: 'root', uid: 0, gid: 0 });
  const name = `wbt${process.pid}`.slice(0, 30);
  execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
  t.teardown(() => spawnSync('userdel', [name]));
  const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
  runners.push({ label: `ordinary user ${name}`, uid: id('-u'), gid: id('-g') });
} else {
  runners.push({ label: `ordinary user ${process.env.USER ?? process.getuid?.()}` });
  t.comment('not root: the root half of this test runs when the suite runs as root (.ci/run does)');
}

function chownTree(dir: string, uid: number, gid: number): void {
  execFileSync('chown', ['-R', '--no-dereference', `${uid}:${gid}`, dir]);
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * Arguments for `env -i`: the command sees exactly `vars`, as on a fresh login,
 * and nothing of the test runner (tap instruments the children it spawns).
 */
function cleanEnv(vars: Record<string, string>, command: string[]): string[] {
  return ['-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), ...command];
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Every process still in the process group `pgid`. */
function groupMembers(pgid: number): string[] {
  const out = execFileSync('ps', ['-eo', 'pid=,pgid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => Number(f[1]) === pgid)
    .map((f) => f.join(' '));
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .map((l) => l.replace(/^\[[a-z-]+\] /, ''))
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

/**
 * Each clone lies in a home closed to other users (like /root or /home/alice).
 * An ordinary user's PostgreSQL runs as that user, in the clone's .wombat. Root's
 * runs as another user, who cannot enter root's home: its data directory is kept
 * under /var/lib/wombat-local, one per checkout directory.
 */
function expectedDataDir(runner: Runner, dir: string, name: string): string {
  const inClone = path.join(dir, '.wombat', name);
  if (runner.uid !== 0) return inClone;
  const moved = path.join('/var/lib/wombat-local', `${name}-${createHash('sha256').update(inClone).digest('hex').slice(0, 12)}`);
  t.teardown(() => rmSync(moved, { recursive: true, force: true }));
  return path.join(moved, 'pg');
}

async function npmStart(t: Test, runner: Runner, dir: string, home: string): Promise<void> {
  const apiPort = await freePort();
  const pgPort = await freePort();
  const env = { PATH: SYSTEM_PATH, HOME: home, npm_config_cache: path.join(home, '.npm'), npm_config_update_notifier: 'false', LOG_FORMAT: 'json', API_PORT: String(apiPort), EMBEDDED_PG_PORT: String(pgPort), SHUTDOWN_TIMEOUT_MS: '10000' };
  const ids = runner.uid === undefined ? {} : { uid: runner.uid, gid: runner.gid! };
  // Its own process group, like a terminal's foreground job: Ctrl-C reaches the whole group.
  const child = spawn('env', cleanEnv(env, ['npm', 'start']), { cwd: dir, ...ids, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += String(d)));
  child.stderr.on('data', (d: Buffer) => (output += String(d)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child.pid!);
  });

  let status: number | undefined;
  for (let i = 0; i < 1800 && child.exitCode === null && status !== 200; i++) {
    status = await fetch(`http://127.0.0.1:${apiPort}/health`).then(
      (r) => (r.body?.cancel(), r.status),
      () => undefined,
    );
    if (status !== 200) await sleep(100);
  }
  t.equal(status, 200, `${runner.label}: GET /health answers 200`, { output: output.slice(-3000) });
  const started = jsonLines(output).find((l) => l.msg === 'embedded PostgreSQL started');
  const pgPid = Number(started?.pid);
  t.ok(pgPid > 0 && isProcessAlive(pgPid), `${runner.label}: the embedded PostgreSQL runs`);
  t.equal(started?.dir, expectedDataDir(runner, dir, 'pg'), `${runner.label}: where its data lives`);

  process.kill(-child.pid!, 'SIGINT');
  t.equal(await exited, 0, `${runner.label}: npm start exits 0 after Ctrl-C`, { output: output.slice(-3000) });
  for (let i = 0; i < 100 && (groupMembers(child.pid!).length > 0 || isProcessAlive(pgPid)); i++) await sleep(100);
  t.same(groupMembers(child.pid!), [], `${runner.label}: no service process left`);
  t.notOk(isProcessAlive(pgPid), `${runner.label}: no PostgreSQL left`);
  t.ok(await portFree(apiPort), `${runner.label}: the api port is free again`);
  t.ok(await portFree(pgPort), `${runner.label}: the PostgreSQL port is free again`);
  t.notOk(existsSync(path.join(String(started?.dir), 'postmaster.pid')), `${runner.label}: PostgreSQL shut down cleanly`);
}

async function npmTest(t: Test, runner: Runner, dir: string, home: string): Promise<void> {
  const env = { PATH: SYSTEM_PATH, HOME: home, npm_config_cache: path.join(home, '.npm'), npm_config_update_notifier: 'false', LOG_FORMAT: 'json' };
  const ids = runner.uid === undefined ? {} : { uid: runner.uid, gid: runner.gid! };
  const child = spawn('env', cleanEnv(env, ['npm', 'test', '--', 'packages/core/test/config.test.ts']), { cwd: dir, ...ids, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += String(d)));
  child.stderr.on('data', (d: Buffer) => (output += String(d)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child.pid!);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 0, `${runner.label}: npm test passes`, { output: output.slice(-3000) });
  t.match(output, /# \{ total: \d+, pass: \d+ \}/, `${runner.label}: tap ran the file`);
  const started = jsonLines(output).find((l) => l.msg === 'embedded PostgreSQL started');
  t.equal(started?.dir, expectedDataDir(runner, dir, 'pg-test'), `${runner.label}: where the test PostgreSQL lives`);
  t.notOk(isProcessAlive(Number(started?.pid)), `${runner.label}: the test PostgreSQL is stopped afterwards`);
  t.same(groupMembers(child.pid!), [], `${runner.label}: nothing left running`);
}

t.test('npm start and npm test work on a fresh clone with no .wombat, for each kind of user, leaving nothing running', async (t) => {
  const base = mkdtempSync(path.join(tmpdir(), 'wombat-clone-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  // Others may enter the base (as under /home or /srv), not the clones themselves.
  execFileSync('chmod', ['0755', base]);
  await Promise.all(
    runners.map(async (runner, i) => {
      const home = path.join(base, `home-${i}`);
      const dir = path.join(home, 'wombat');
      mkdirSync(dir, { recursive: true });
      freshTree(dir);
      t.notOk(existsSync(path.join(dir, '.wombat')), `${runner.label}: the clone has no .wombat`);
      execFileSync('chmod', ['0700', home]);
      if (runner.uid !== undefined) chownTree(home, runner.uid, runner.gid!);
      await npmStart(t, runner, dir, home);
      await npmTest(t, runner, dir, home);
    }),
  );
});
