import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, fstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { freePort, repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import t from 'tap';
import { readmeBlock } from './helpers.ts';

/**
 * The README's journalctl lines against a real systemd-journald, with the services' own
 * output: a journal namespace of this test's own (`systemd-journald <namespace>`, sockets
 * under /run/systemd/journal.<namespace>), fed as systemd feeds a unit with
 * StandardOutput=journal, StandardError=journal and SyslogLevelPrefix=yes: one connection
 * to the journal's stdout socket, announced with the unit's name and SyslogIdentifier and
 * level prefixes on, is the service's stdout and stderr, and JOURNAL_STREAM names it.
 * Each README line runs as written with `--namespace=<namespace>` added after `journalctl`.
 *
 * journald runs as root only (it creates /run/systemd/journal.<namespace>); for any other
 * user, and where Debian's systemd package is missing, the test says so and skips, except
 * under .ci/run (WOMBAT_CI=1), which runs as root and installs systemd.
 */
t.setTimeout(120_000);

const JOURNALD = '/lib/systemd/systemd-journald';
const root = process.getuid?.() === 0;
const tools = existsSync(JOURNALD) && spawnSync('sh', ['-c', 'command -v journalctl && command -v jq']).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';
const skip = root && tools ? false : ci && root ? false : !root ? 'systemd-journald runs only as root' : `${JOURNALD}, journalctl or jq is missing (.ci/run installs them)`;

const TOKEN = 'journal-test-admin-token-0123456789';

t.test('journalctl shows the services\' lines by unit and by priority, and -o cat is their JSON', { skip }, async (t) => {
  t.ok(tools, 'systemd-journald, journalctl and jq are installed');
  const namespace = `wombat-test-${randomBytes(4).toString('hex')}`;
  const socketDir = `/run/systemd/journal.${namespace}`;
  const machineId = readFileSync('/etc/machine-id', 'utf8').trim();
  const journald = spawn(JOURNALD, [namespace], { stdio: ['ignore', 'ignore', 'pipe'] });
  let journaldErr = '';
  journald.stderr.setEncoding('utf8').on('data', (s: string) => (journaldErr += s));
  t.teardown(async () => {
    if (journald.exitCode === null) {
      journald.kill('SIGTERM');
      await new Promise((r) => journald.once('exit', r));
    }
    for (const dir of [socketDir, `/var/log/journal/${machineId}.${namespace}`, `/run/log/journal/${machineId}.${namespace}`]) rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; !existsSync(`${socketDir}/stdout`); i++) {
    if (journald.exitCode !== null || i > 200) throw new Error(`systemd-journald did not start: ${journaldErr}`);
    await sleep(50);
  }
  // journalctl -f finds nothing to follow before the namespace has a journal file, and journald
  // opens one at its first message: send one (no unit, so no query below matches it) and wait.
  const probe = net.createConnection(`${socketDir}/stdout`);
  await new Promise((resolve, reject) => probe.once('connect', resolve).once('error', reject));
  probe.end('journal-test\n\n6\n0\n0\n0\n0\njournal ready\n');
  const journalFiles = () =>
    [`/var/log/journal/${machineId}.${namespace}`, `/run/log/journal/${machineId}.${namespace}`].some((dir) => existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.journal')));
  for (let i = 0; !journalFiles(); i++) {
    if (journald.exitCode !== null || i > 200) throw new Error(`systemd-journald wrote no journal file: ${journaldErr}`);
    await sleep(50);
  }

  const journalctl = (line: string) => {
    t.match(line, /^journalctl /);
    return line.replace(/^journalctl /, `journalctl --namespace=${namespace} --no-pager `);
  };
  const sh = (line: string) => spawnSync('sh', ['-c', line], { encoding: 'utf8' });

  /** A service as systemd starts a unit with its output in the journal. */
  async function startUnit(unit: string, identifier: string, env: Record<string, string>): Promise<ChildProcess> {
    // What the unit runs: its ExecStart's arguments after the bundled node.
    const unitFile = readFileSync(path.join(repoRoot, 'systemd', unit.replace(/@[^.]+\./, '@.')), 'utf8');
    const exec = /^ExecStart=\/opt\/wombat\/node_modules\/\.bin\/node (.+)$/m.exec(unitFile);
    if (!exec) throw new Error(`${unit} does not start the bundled node`);
    const args = exec[1]!.trim().split(/\s+/);
    const stream = net.createConnection(`${socketDir}/stdout`);
    await new Promise((resolve, reject) => stream.once('connect', resolve).once('error', reject));
    // identifier, unit, priority (info), level prefix, forward to syslog, kmsg, console
    // The header must be on the socket before the socket is handed over and closed here: a
    // destroyed socket drops what it has not written, and journald would read the
    // service's first lines as the header.
    await new Promise<void>((resolve, reject) => stream.write(`${identifier}\n${unit}\n6\n1\n0\n0\n0\n`, (err) => (err ? reject(err) : resolve())));
    const fd = (stream as unknown as { _handle: { fd: number } })._handle.fd;
    const st = fstatSync(fd);
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', NODE_ENV: 'production', JOURNAL_STREAM: `${st.dev}:${st.ino}`, ...env },
      stdio: ['ignore', stream, stream],
    });
    stream.destroy(); // the child holds the connection now
    t.teardown(() => void child.kill('SIGKILL'));
    return child;
  }
  const stopped = (child: ChildProcess) => new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));

  const db = await createTestDatabase(t);
  // An invalid schedule: the engine logs an error for it; no alert channel: a warning.
  await db.sql`insert into wombat.schedules (name, job, kind, cron) values ('broken', 'fetch-candles', 'cron', '0 * * * *')`;
  const env = { DATABASE_URL: db.url, API_ADMIN_TOKEN: TOKEN, DATA_ROOT: t.testdir() };
  const lines = readmeBlock('Logs are JSON lines in the journal');
  t.equal(lines.length, 4, 'follow the engine, every worker, warnings and up, api errors as JSON');
  const [follow, workers, warnings, apiErrors] = lines.map((l) => l.replace(/\s+#.*$/, '')) as [string, string, string, string];

  // journalctl -u wombat-scheduler-engine -f: follows the engine until its error shows.
  const followed = spawn('sh', ['-c', journalctl(follow)], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  let seen = '';
  followed.stdout.setEncoding('utf8').on('data', (s: string) => (seen += s));
  const stopFollowing = () => {
    try {
      process.kill(-followed.pid!, 'SIGTERM');
    } catch {
      // already stopped
    }
  };
  t.teardown(stopFollowing);
  // journalctl -f can miss what is written while it starts: the services start once it shows
  // a line of the engine's unit (sent again until it does).
  const following = '{"level":30,"service":"journal-test","msg":"journalctl -f is following"}';
  for (let i = 0; !seen.includes(following); i++) {
    if (i > 600) throw new Error(`journalctl -f never showed a line of the engine's unit: ${seen}`);
    if (i % 40 === 0) {
      const line = net.createConnection(`${socketDir}/stdout`);
      await new Promise((resolve, reject) => line.once('connect', resolve).once('error', reject));
      await new Promise<void>((resolve) => line.end(`wombat-scheduler-engine\nwombat-scheduler-engine.service\n6\n0\n0\n0\n0\n${following}\n`, () => resolve()));
    }
    await sleep(50);
  }
  seen = '';
  const engine = await startUnit('wombat-scheduler-engine.service', 'wombat-scheduler-engine', env);
  const worker1 = await startUnit('wombat-worker@1.service', 'wombat-worker-1', { ...env, WORKER_INSTANCE: '1' });
  const worker2 = await startUnit('wombat-worker@2.service', 'wombat-worker-2', { ...env, WORKER_INSTANCE: '2' });
  const apiPort = await freePort();
  const api = await startUnit('wombat-api.service', 'wombat-api', { ...env, API_PORT: String(apiPort) });

  for (let i = 0; !seen.includes('schedule is invalid'); i++) {
    if (i > 1200) {
      const all = sh(`journalctl --namespace=${namespace} --no-pager -o short -n 20`);
      throw new Error(`the engine's error never reached journalctl -f: ${seen}\nengine exit ${engine.exitCode}, journald exit ${journald.exitCode} ${journaldErr}\nthe namespace's last lines:\n${all.stdout}${all.stderr}`);
    }
    await sleep(50);
  }
  t.match(seen, /wombat-scheduler-engine\[\d+\]: \{"level":30,.*"service":"scheduler-engine"/, 'journalctl -f shows the engine\'s info lines, without the <N> prefix');
  t.notMatch(seen, /wombat-(api|worker)/, 'and only the engine\'s');
  stopFollowing();

  for (const child of [engine, worker1, worker2]) child.kill('SIGTERM');
  for (const child of [engine, worker1, worker2]) t.equal(await stopped(child), 0, 'a service stops cleanly on SIGTERM');

  // The api's database refuses connections: /health answers 503 and the api logs an error.
  const base = `http://127.0.0.1:${apiPort}`;
  for (let i = 0; (await fetch(`${base}/health`).then((r) => r.status, () => 0)) !== 200; i++) {
    if (i > 1200) throw new Error('the api did not start');
    await sleep(50);
  }
  const name = new URL(db.url).pathname.slice(1);
  const admin = postgres(process.env.WOMBAT_TEST_ADMIN_URL!, { max: 1, onnotice: () => {} });
  t.teardown(() => admin.end());
  await admin.unsafe(`alter database "${name}" with allow_connections false`);
  await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${name}`;
  t.equal((await fetch(`${base}/health`)).status, 503, 'the api answers 503 while its database refuses connections');
  await admin.unsafe(`alter database "${name}" with allow_connections true`);
  api.kill('SIGTERM');
  t.equal(await stopped(api), 0, 'the api stops cleanly on SIGTERM');
  await sleep(500); // journald files what the streams delivered

  const all = sh(journalctl(`journalctl -u 'wombat-*' -o cat`));
  const catLines = all.stdout.split('\n').filter(Boolean);
  t.same(catLines.filter((l) => !l.startsWith('{"level":')), [], 'every line is a JSON log record, its priority prefix gone');
  const records = catLines.filter((l) => l.startsWith('{"level":')).map((l) => JSON.parse(l) as { level: number; service: string; msg: string });
  t.ok(records.some((r) => r.level === 30), 'the journal holds info lines');
  t.ok(records.some((r) => r.level === 40 && r.service === 'scheduler-engine'), 'the engine\'s warning');
  t.ok(records.some((r) => r.level === 50 && r.service === 'scheduler-engine' && r.msg === 'schedule is invalid and will not run until fixed'), 'the engine\'s error');
  t.ok(records.some((r) => r.level === 50 && r.service === 'api'), 'the api\'s error');

  // journalctl -u 'wombat-worker@*' --since '1 hour ago': both workers, nothing else.
  const w = sh(journalctl(workers));
  t.equal(w.status, 0, workers);
  t.match(w.stdout, /wombat-worker-1\[\d+\]: \{"level":30/, 'worker@1');
  t.match(w.stdout, /wombat-worker-2\[\d+\]: \{"level":30/, 'worker@2', { journal: sh(journalctl(`journalctl -o short`)).stdout });
  t.notMatch(w.stdout, /wombat-(api|scheduler-engine)\[/, 'no other service');

  // journalctl -u 'wombat-*' -p warning: exactly the lines at warning and above.
  const p = sh(journalctl(warnings));
  t.equal(p.status, 0, warnings);
  const shown = p.stdout.split('\n').filter((l) => /\]: /.test(l)).map((l) => l.slice(l.indexOf(']: ') + 3));
  t.same(shown.map((l) => JSON.parse(l) as unknown), records.filter((r) => r.level >= 40), 'every warning, error and fatal of every unit, and nothing else');

  // journalctl -u wombat-api -o cat | jq 'select(.level >= 50)': the api's errors as JSON.
  const j = sh(journalctl(apiErrors));
  t.equal(j.status, 0, apiErrors, { stderr: j.stderr });
  const errors = JSON.parse(`[${j.stdout.trim().replace(/\}\n\{/g, '},{')}]`) as { level: number; service: string }[];
  t.ok(errors.length > 0, 'the api\'s errors');
  t.same(errors, records.filter((r) => r.service === 'api' && r.level >= 50), 'all of them, and only them');
});
