import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '@wombat/core/platform';
import { startPrivatePostgres } from '@wombat/core/testing';

/**
 * The engine, a worker and the api as real processes against a PostgreSQL of this file's own:
 * when a heartbeat loop hangs (the database frozen with SIGSTOP, so calls neither
 * answer nor fail) for longer than LOOP_STALL_EXIT_MS, the process stops and exits 1
 * for the service manager to restart it.
 */
const pg = await startPrivatePostgres(t);
const main = path.resolve(import.meta.dirname, '../src/main.ts');
const workerMain = path.resolve(import.meta.dirname, '../../worker/src/main.ts');
const apiMain = path.resolve(import.meta.dirname, '../../api/src/main.ts');

/** A service process with the settings under which a frozen database hangs its heartbeat (see below). */
function start(main: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [main], {
    env: {
      PATH: process.env.PATH ?? '',
      LOG_FORMAT: 'json',
      DATABASE_URL: pg.url,
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
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => out };
}

t.test('a loop that cannot make progress makes the engine, the worker and the api exit 1 through their stop paths', async (t) => {
  const engine = start(main, { ENABLE_SCHEDULER: 'false', ENGINE_HEARTBEAT_INTERVAL_MS: '200' });
  const worker = start(workerMain, { WORKER_HEARTBEAT_INTERVAL_MS: '200', WORKER_QUEUES: 'canary', DATA_ROOT: t.testdir() });
  const api = start(apiMain, { API_PORT: String(await freePort()), API_ADMIN_TOKEN: 'stall-test-admin-token-0123456789' });
  const all = [engine, worker, api];
  for (const p of all) t.teardown(() => void p.child.kill('SIGKILL'));
  const started = () => engine.out().includes('engine started') && worker.out().includes('worker started') && api.out().includes('api listening');
  for (let i = 0; i < 400 && !started(); i++) await sleep(50);
  t.ok(started(), 'all three started');

  pg.pause();
  t.teardown(() => pg.resume());
  const codes = await Promise.race([Promise.all(all.map((p) => p.exited)), sleep(60_000).then(() => 'still running' as const)]);
  pg.resume();
  t.same(codes, [1, 1, 1], 'exit status 1, all three');
  for (const [name, p, loop] of [['engine', engine, 'heartbeat'], ['worker', worker, 'heartbeat'], ['api', api, 'pools']] as const) {
    const out = p.out();
    t.match(out, /loop round overran its deadline; abandoned/, `${name}: the overrun round is logged`);
    t.match(out, /loop cannot make progress/, `${name}: the stall is logged`);
    t.match(out, new RegExp(`"reason":"${name} loop ${loop} made no progress`), `${name}: the stop names the loop`);
    t.match(out, /"msg":"stopping"/, `${name}: through the normal stop path`);
  }
});
