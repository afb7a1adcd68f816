import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';

const fixture = path.resolve(import.meta.dirname, 'fixtures/crash-service.ts');

function run(mode: string, ...args: string[]): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const child = spawn(process.execPath, [fixture, mode, ...args], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  t.teardown(() => child.kill('SIGKILL'));
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      resolve({ code, lines });
    }),
  );
}

const msgs = (lines: Record<string, unknown>[]) => lines.map((l) => l.msg);

t.test('an uncaught exception is logged with its error, the service stops cleanly and exits 1', async (t) => {
  const { code, lines } = await run('throw');
  t.equal(code, 1, 'exit status 1');
  const fatal = lines.find((l) => l.level === 60);
  t.ok(fatal, 'a fatal line');
  t.match(fatal, { msg: /uncaught exception/, reason: 'uncaught exception', err: { message: 'boom in a timer', stack: /crash-service/ } }, 'with the error and where it came from');
  const m = msgs(lines);
  t.ok(m.indexOf('intake closed') > m.indexOf(fatal!.msg), 'intake stopped after the error');
  t.ok(m.indexOf('pool closed') > m.indexOf('intake closed'), 'then the pool: the normal stop order');
});

t.test('an unhandled rejection does the same', async (t) => {
  const { code, lines } = await run('reject');
  t.equal(code, 1);
  t.match(lines.find((l) => l.level === 60), { reason: 'unhandled rejection', err: { message: 'boom in a promise' } });
  t.ok(msgs(lines).includes('pool closed'), 'stopped cleanly');
});

t.test('a stop that hangs after an uncaught error still exits 1 at the shutdown deadline', async (t) => {
  const { code, lines } = await run('hang-stop');
  t.equal(code, 1);
  t.ok(msgs(lines).includes('stop deadline passed'), 'the deadline ended the stop');
  t.notOk(msgs(lines).includes('pool closed'), 'steps after the hung one did not run');
});

t.test('a connection cut while postgres.js reads its array types (a promise the driver leaves unhandled) is logged, not fatal', async (t) => {
  const url = process.env.WOMBAT_TEST_ADMIN_URL;
  if (!url) throw new Error('run under node deploy/with-postgres.ts');
  const { code, lines } = await run('type-read', url);
  t.equal(lines.filter((l) => l.level === 60).length, 0, 'no fatal line');
  const warned = lines.find((l) => l.msg === 'a new database connection closed while the driver read its array types; the next connection reads them again');
  t.ok(warned, 'the driver\'s rejection is logged');
  t.match(warned, { level: 40, err: { message: /ECONNREFUSED|CONNECTION_CLOSED/ } });
  t.ok(msgs(lines).includes('the statement failed with its connection'), 'the statement itself failed as usual');
  t.ok(msgs(lines).includes('still running'));
  t.equal(code, 0, 'and the service went on until it was stopped');
});
