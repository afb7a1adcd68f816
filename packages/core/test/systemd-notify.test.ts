/**
 * Type=notify and WatchdogSec= without systemd: the test plays the service
 * manager. It listens on a unix datagram socket (Node has none, so a few lines of
 * Python do), hands it to the service as NOTIFY_SOCKET with WATCHDOG_USEC, and
 * kills the service with SIGABRT when no WATCHDOG=1 came for WatchdogSec, as
 * systemd does; then it starts the service again, as Restart= does.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { createNotifier } from '@wombat/core/platform';
import { testLogger } from '@wombat/core/testing';

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';
const skip = have('systemd-notify') && have('python3') ? false : ci ? false : 'needs systemd-notify (package systemd) and python3';

const RECEIVER = `
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("LISTENING", flush=True)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
            for fd in fds:
                os.close(fd)  # systemd-notify waits for this (BARRIER=1)
    print(msg.decode().replace("\\n", " "), flush=True)
`;

// Short, so that the stall is caught soon; pings (every half of it) still have seconds of slack.
const WATCHDOG_SEC = 4;

t.test('without NOTIFY_SOCKET nothing is sent and no watchdog runs', async (t) => {
  const n = createNotifier({ env: { WATCHDOG_USEC: '1000000' }, pid: process.pid, log: testLogger() });
  t.equal(n.watchdogIntervalMs, undefined);
  await n.ready();
  n.close();
  const other = createNotifier({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, pid: 2, log: testLogger() });
  t.equal(other.watchdogIntervalMs, undefined, 'the watchdog is for another process');
  t.equal(createNotifier({ env: { NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '30000000' }, pid: 2, log: testLogger() }).watchdogIntervalMs, 15000, 'pings at half WatchdogSec');
});

t.test('READY=1, then WATCHDOG=1 until the event loop stalls; the watchdog kills it and a restart is ready again', { skip }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-notify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, 'notify');
  const receiver = spawn('python3', ['-c', RECEIVER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => receiver.kill());
  const messages: { at: number; msg: string }[] = [];
  let listening!: () => void;
  const ready = new Promise<void>((r) => (listening = r));
  readline.createInterface({ input: receiver.stdout }).on('line', (msg) => (msg === 'LISTENING' ? listening() : messages.push({ at: Date.now(), msg })));
  await ready;

  const fixture = path.join(import.meta.dirname, 'fixtures', 'notify-service.ts');
  const start = (): { child: ChildProcess; out: () => string; exit: Promise<{ code: number | null; signal: string | null }> } => {
    // env -i: exactly these variables, as systemd gives; tap would otherwise load its own
    // signal handlers into the child, and a JS handler for SIGABRT never runs on a stalled loop.
    const vars = { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', NOTIFY_SOCKET: sock, WATCHDOG_USEC: String(WATCHDOG_SEC * 1_000_000) };
    const child = spawn('env', ['-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), process.execPath, fixture], {
      cwd: import.meta.dirname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += String(d)));
    child.stderr!.on('data', (d: Buffer) => (out += String(d)));
    t.teardown(() => child.kill('SIGKILL'));
    const exit = new Promise<{ code: number | null; signal: string | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    return { child, out: () => out, exit };
  };
  const waitFor = async (what: string, cond: () => boolean, seconds = 90) => {
    for (let i = 0; i < seconds * 10 && !cond(); i++) await sleep(100);
    t.ok(cond(), what);
  };
  const count = (msg: string, since = 0) => messages.filter((m) => m.msg === msg && m.at >= since).length;

  // The manager's watchdog: SIGABRT when WATCHDOG=1 is overdue, as systemd does.
  const first = start();
  let killedAt = 0;
  let lastPing = 0;
  const watchdog = setInterval(() => {
    const pings = messages.filter((m) => m.msg === 'WATCHDOG=1');
    lastPing = pings.at(-1)?.at ?? lastPing;
    if (lastPing > 0 && !killedAt && Date.now() - lastPing > WATCHDOG_SEC * 1000) {
      killedAt = Date.now();
      first.child.kill('SIGABRT');
    }
  }, 100);
  t.teardown(() => clearInterval(watchdog));

  await waitFor('READY=1 once started', () => count('READY=1') === 1);
  await waitFor('WATCHDOG=1 keeps coming while the loop runs', () => count('WATCHDOG=1') >= 2);
  t.equal(killedAt, 0, 'a healthy service is never killed by the watchdog');

  first.child.kill('SIGUSR2');
  await waitFor('the service stalls', () => first.out().includes('STALL'));
  const stalledAt = Date.now();
  const { signal } = await first.exit;
  t.equal(signal, 'SIGABRT', 'the watchdog killed it');
  t.ok(killedAt >= stalledAt, 'only after the stall');
  t.equal(count('WATCHDOG=1', stalledAt + (WATCHDOG_SEC * 1000) / 2), 0, 'no ping during the stall');

  // Restart=on-failure: a new process, ready again.
  const since = Date.now();
  const second = start();
  await waitFor('the restarted service is ready', () => count('READY=1', since) === 1);
  second.child.kill('SIGTERM');
  t.equal((await second.exit).code, 0, `it stops cleanly on SIGTERM\n${second.out()}`);
});
