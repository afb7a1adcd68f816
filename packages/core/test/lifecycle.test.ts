import t from 'tap';
import { Writable } from 'node:stream';
import { EventEmitter } from 'node:events';
import { createLifecycle, createLogger, flushAndExit, handleSignals, redactUrl } from '@wombat/core/platform';
import { testLogger } from '@wombat/core/testing';

t.test('stop runs steps last-registered first, once, even when a step throws', async (t) => {
  const order: string[] = [];
  const lc = createLifecycle({ log: testLogger(), shutdownTimeoutMs: 1000 });
  lc.onStop('pool', () => void order.push('pool'));
  lc.onStop('drain', async () => {
    order.push('drain');
    throw new Error('drain failed');
  });
  lc.onStop('intake', () => void order.push('intake'));
  const [a, b] = [lc.stop('test'), lc.stop('again')];
  t.equal(a, b, 'memoized');
  t.equal(await a, true);
  t.same(order, ['intake', 'drain', 'pool']);
  t.equal(lc.stopping, true);
});

t.test('stop resolves false when a step outlives the deadline', async (t) => {
  const lc = createLifecycle({ log: testLogger(), shutdownTimeoutMs: 50 });
  lc.onStop('hang', () => new Promise(() => {}));
  t.equal(await lc.stop('test'), false);
});

function fakeProcess() {
  const ee = new EventEmitter();
  const exits: number[] = [];
  return { proc: { on: ee.on.bind(ee), exit: (code?: number) => void exits.push(code ?? 0) } as never, ee, exits };
}

t.test('first signal stops cleanly and exits 0; a later second signal exits 1 at once', async (t) => {
  const { proc, ee, exits } = fakeProcess();
  const lc = createLifecycle({ log: testLogger(), shutdownTimeoutMs: 5000 });
  let release!: () => void;
  lc.onStop('slow', () => new Promise<void>((r) => (release = r)));
  handleSignals(lc, proc, testLogger(), 20);
  ee.emit('SIGTERM', 'SIGTERM');
  ee.emit('SIGINT', 'SIGINT'); // same instant: npm forwarding the terminal's signal
  t.same(exits, [], 'a duplicate delivered together is ignored');
  await new Promise((r) => setTimeout(r, 40));
  ee.emit('SIGINT', 'SIGINT');
  t.same(exits, [1], 'a repeat later forces exit 1');
  release();
  await lc.stop('x');
  await new Promise((r) => setImmediate(r));
  t.same(exits, [1, 0]);
});

t.test('logger writes JSON lines and redacts secrets', async (t) => {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const log = createLogger({ name: 'api', format: 'json', destination });
  log.info({ headers: { authorization: 'Bearer s3cret', appkey: 'k', appsecret: 'shh' }, token: 'tok', user: 'ok' }, 'request');
  log.flush();
  const rec = JSON.parse(lines[0]!);
  t.equal(rec.msg, 'request');
  t.equal(rec.service, 'api');
  t.equal(rec.user, 'ok');
  t.notMatch(lines[0]!, /s3cret|shh|tok"/);
  t.equal(rec.headers.authorization, '[redacted]');
});

t.test('logger is human-readable when asked for pretty output', async (t) => {
  let out = '';
  const destination = new Writable({
    write(chunk, _enc, cb) {
      out += String(chunk);
      cb();
    },
  });
  const log = createLogger({ name: 'api', format: 'pretty', destination });
  log.info({ port: 8000 }, 'listening');
  t.match(out, /INFO.*listening/);
  t.throws(() => JSON.parse(out.trim()));
});

t.test('redactUrl hides the password', async (t) => {
  t.equal(redactUrl('postgres://u:secret@h:5432/db'), 'postgres://u:***@h:5432/db');
});

t.test('an exit waits for the log to be written, and no longer than a second', async (t) => {
  // A destination that writes later, as pino's asynchronous one does.
  const written: string[] = [];
  const pending: string[] = [];
  let flushes = 0;
  const slow = {
    write: (line: string) => void pending.push(line),
    flush(cb: () => void) {
      flushes++;
      setTimeout(() => {
        written.push(...pending.splice(0));
        cb();
      }, 50);
    },
  };
  const log = createLogger({ name: 'test', format: 'json', destination: slow as never });
  const exits: { code: number; written: string[] }[] = [];
  const proc = { exit: ((code: number) => void exits.push({ code, written: [...written] })) as never };
  log.info('stopped');
  flushAndExit(log, proc, 0);
  t.same(exits, [], 'not at once');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(flushes, 1);
  t.equal(exits.length, 1, 'once');
  t.equal(exits[0]!.code, 0);
  t.match(exits[0]!.written.join(''), /"msg":"stopped"/, 'after the last line was written');

  // A destination that never says it is done: the exit still comes.
  const stuck = { write: () => {}, flush: () => {} };
  const stuckExits: number[] = [];
  const started = Date.now();
  flushAndExit(createLogger({ name: 'test', format: 'json', destination: stuck as never }), { exit: ((code: number) => void stuckExits.push(code)) as never }, 1);
  while (stuckExits.length === 0 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
  t.same(stuckExits, [1], 'exits with its code');
  t.ok(Date.now() - started >= 900 && Date.now() - started < 3000, `after about a second (${Date.now() - started} ms)`);
});
