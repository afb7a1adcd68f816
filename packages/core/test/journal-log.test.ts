import t from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { AppError, createLogger, freePort, isJournalStream, repoRoot } from '@wombat/core/platform';

function capture(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  return { stream, lines };
}

t.test('under journald each JSON line starts with its syslog priority, and is plain JSON after it', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ name: 'x', level: 'trace', format: 'json', destination: stream, journal: true });
  log.trace('t');
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error({ err: new Error('boom') }, 'e');
  log.fatal('f');
  t.same(
    lines.map((l) => l.slice(0, 3)),
    ['<7>', '<7>', '<6>', '<4>', '<3>', '<2>'],
  );
  for (const line of lines) {
    const json = JSON.parse(line.replace(/^<\d>/, '')) as { level: number; msg: string };
    t.ok(json.level > 0 && json.msg.length === 1, 'the rest is the JSON record');
  }
});

t.test('a logged error names each cause once, however the messages nest', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ name: 'x', level: 'info', format: 'json', destination: stream });
  const dns = Object.assign(new Error('getaddrinfo ENOTFOUND api.upbit.com'), { code: 'ENOTFOUND' });
  const request = new AppError('network', `request to api.upbit.com failed: ${dns.message}`, { cause: dns });
  const retried = new AppError('exchange_unavailable', `Upbit market list failed after 6 attempts: ${request.message}`, { cause: request });
  log.error({ err: retried }, 'symbol collection failed');
  // A cause whose text the message does not carry is still named.
  log.error({ err: new AppError('alert_delivery', 'webhook answered 500', { cause: new Error('socket hang up') }) }, 'x');
  const [first, second] = lines.map((l) => JSON.parse(l) as { err: { message: string; stack: string; code: string } });
  t.equal(first!.err.message, 'Upbit market list failed after 6 attempts: request to api.upbit.com failed: getaddrinfo ENOTFOUND api.upbit.com');
  t.equal(first!.err.code, 'exchange_unavailable');
  t.match(first!.err.stack, /caused by: Error: getaddrinfo ENOTFOUND/, 'the stack keeps the whole chain');
  t.equal(second!.err.message, 'webhook answered 500: socket hang up');
});

t.test('elsewhere (a terminal, a pipe, a file) lines are plain JSON', async (t) => {
  const { stream, lines } = capture();
  const log = createLogger({ name: 'x', format: 'json', destination: stream, journal: false });
  log.warn('w');
  t.match(lines[0], /^\{"level":40/);
});

t.test('stdout is the journal only when JOURNAL_STREAM names it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fd = openSync(path.join(dir, 'out'), 'w');
  t.teardown(() => closeSync(fd));
  const st = fstatSync(fd);
  t.ok(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino}` }, fd));
  t.notOk(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1}` }, fd), 'output redirected elsewhere');
  t.notOk(isJournalStream({}, fd));
});

t.test('a production entry point (migrate) writes prefixed lines to a journal stream and plain JSON otherwise', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A port nobody listens on: migrate fails and logs it at level fatal.
  const env = { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', DATABASE_URL: `postgres://u:p@127.0.0.1:${await freePort()}/x` };
  const run = async (journal: boolean): Promise<string[]> => {
    const file = path.join(dir, journal ? 'journal' : 'plain');
    const fd = openSync(file, 'w');
    const st = fstatSync(fd);
    const child = spawn(process.execPath, ['deploy/migrate.ts'], {
      cwd: repoRoot,
      env: { ...env, ...(journal ? { JOURNAL_STREAM: `${st.dev}:${st.ino}` } : {}) },
      stdio: ['ignore', fd, 'inherit'],
    });
    closeSync(fd);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    t.equal(code, 1, 'migrate fails');
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  };
  const journal = await run(true);
  t.ok(journal.length > 0);
  t.match(journal.at(-1), /^<2>\{"level":60,.*"msg":"migration failed"/, 'fatal is priority 2 (crit)');
  for (const line of journal) t.match(line, /^<[0-7]>\{/, 'every line carries a priority');
  const plain = await run(false);
  t.match(plain.at(-1), /^\{"level":60,/, 'no prefix off the journal');
});
