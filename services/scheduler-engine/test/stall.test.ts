import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startPrivatePostgres } from '@wombat/core/testing';

/**
 * The engine as a real process against a PostgreSQL of this file's own: when its
 * heartbeat loop hangs (the database frozen with SIGSTOP, so calls neither answer
 * nor fail) for longer than LOOP_STALL_EXIT_MS, the process stops and exits 1 for
 * the service manager to restart it.
 */
const pg = await startPrivatePostgres(t);
const main = path.resolve(import.meta.dirname, '../src/main.ts');

t.test('a heartbeat loop that cannot make progress makes the engine exit 1 through its stop path', async (t) => {
  const child = spawn(process.execPath, [main], {
    env: {
      PATH: process.env.PATH ?? '',
      LOG_FORMAT: 'json',
      DATABASE_URL: pg.url,
      ENABLE_SCHEDULER: 'false',
      ENGINE_HEARTBEAT_INTERVAL_MS: '200',
      LOOP_STALL_EXIT_MS: '1000',
      // Longer than the heartbeat round's deadline (5 s): the round hangs rather than fails.
      DATABASE_STATEMENT_TIMEOUT_MS: '60000',
      SHUTDOWN_TIMEOUT_MS: '8000',
      // Every loop's abandoned round keeps its hung connection: a pool large enough that the
      // heartbeat's own statement hangs (a stuck loop) rather than waiting for a connection,
      // and a connect deadline past the test, so a new connection to the frozen server hangs
      // too instead of failing as "database unreachable" (which a restart would not mend).
      DATABASE_POOL_SIZE: '60',
      DATABASE_CONNECT_TIMEOUT_MS: '60000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));
  for (let i = 0; i < 400 && !out.includes('engine started'); i++) await sleep(50);
  t.match(out, /engine started/);

  pg.pause();
  t.teardown(() => pg.resume());
  const code = await Promise.race([exited, sleep(60_000).then(() => 'still running' as const)]);
  pg.resume();
  t.equal(code, 1, 'exit status 1');
  t.match(out, /loop round overran its deadline; abandoned/, 'the overrun round is logged');
  t.match(out, /loop cannot make progress/, 'the stall is logged');
  t.match(out, /"reason":"engine loop heartbeat made no progress/, 'the stop names the loop');
  t.match(out, /"msg":"stopping"/, 'through the normal stop path');
});
