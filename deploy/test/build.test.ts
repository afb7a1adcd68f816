/**
 * The services as systemd and Docker run them: `npm run build` bundles each into
 * services/<name>/dist/main.mjs; the built engine, worker and api then work together
 * on a real PostgreSQL, with an exchange faked: a schedule fires, a task collects
 * candles into a Parquet file, the dashboard's files are served, and each stops
 * cleanly on SIGTERM.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { startFakeExchange } from '@wombat/collectors/testing';
import t, { type Test } from 'tap';

t.setTimeout(240_000);
const TOKEN = 'build-test-admin-token-0123456789abcdef';

function start(t: Test, service: string, env: Record<string, string>): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [path.join('services', service, 'dist', 'main.mjs')], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', NODE_ENV: 'production', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => void child.kill('SIGKILL'));
  return { child, out: () => out, exited };
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) {
    const v = await f();
    if (v !== undefined) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

t.test('npm run build bundles each service, and the built services run together', async (t) => {
  const build = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  t.equal(build.status, 0, build.stderr);
  for (const s of ['api', 'scheduler-engine', 'worker']) {
    t.match(build.stdout, `built services/${s}/dist/main.mjs`);
    t.ok(existsSync(path.join(repoRoot, 'services', s, 'dist', 'main.mjs')), `${s} is built`);
  }

  const db = await createTestDatabase(t);
  const fake = await startFakeExchange({});
  t.teardown(() => fake.close());
  const dataRoot = t.testdir();
  const port = await freePort();
  const env = { DATABASE_URL: db.url, DATA_ROOT: dataRoot, UPBIT_BASE_URL: fake.url, API_ADMIN_TOKEN: TOKEN };
  const services = {
    engine: start(t, 'scheduler-engine', env),
    worker: start(t, 'worker', env),
    api: start(t, 'api', { ...env, API_PORT: String(port) }),
  };
  for (const [name, s] of Object.entries(services)) {
    const ready = { engine: '"msg":"engine started"', worker: '"msg":"worker started"', api: '"msg":"api listening"' }[name]!;
    await until(`${name} to start`, async () => {
      if (s.child.exitCode !== null) throw new Error(`${name} exited ${s.child.exitCode}: ${s.out()}`);
      return s.out().includes(ready) || undefined;
    });
  }

  // The engine publishes a schedule's occurrence and the worker runs it.
  await db.sql`insert into wombat.schedules (name, job, kind, cron, overlap) values ('built-canary', 'canary', 'cron', '* * * * * *', 'skip')`;
  await until('a scheduled run to complete', async () => {
    const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from wombat.runs r join wombat.schedules s on s.id = r.schedule_id where s.name = 'built-canary' and r.state = 'completed'`;
    return r!.n > 0 ? true : undefined;
  }).catch(async (err: unknown) => {
    const runs = await db.sql`select job, state, schedule_id, error from wombat.runs order by id desc limit 5`;
    const schedules = await db.sql`select name, status, paused_reason from wombat.schedules`;
    throw new Error(`${(err as Error).message}\nruns ${JSON.stringify(runs)}\nschedules ${JSON.stringify(schedules)}\nengine ${services.engine.out().slice(-3000)}\nworker ${services.worker.out().slice(-2000)}`);
  });

  // A task through the api: the worker collects candles into Parquet (parquet-wasm, outside the bundle).
  const res = await fetch(`http://127.0.0.1:${port}/api/tasks/fetch-candles`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1H', daysBack: 2 }),
  });
  const accepted = (await res.json()) as { task_id: string };
  t.equal(res.status, 202, JSON.stringify(accepted));
  const task = await until('the task to finish', async () => {
    const s = (await (await fetch(`http://127.0.0.1:${port}/api/tasks/${accepted.task_id}`)).json()) as { status: string; result?: { fetched?: number } };
    return ['completed', 'failed', 'cancelled'].includes(s.status) ? s : undefined;
  });
  t.match(task, { status: 'completed', result: { fetched: Number } }, JSON.stringify(task));
  const files = readdirSync(dataRoot, { recursive: true }).map(String).filter((f) => f.endsWith('.parquet'));
  t.ok(files.length > 0, `a Parquet file was written: ${files.join(', ')}`);

  // The dashboard's files: its own (found from the build's folder) and the libraries it serves from node_modules.
  for (const file of ['', 'app.js', 'client.js', 'pages/runs.js', 'vendor/preact-htm.js', 'vendor/uplot.js']) {
    const r = await fetch(`http://127.0.0.1:${port}/ui/${file}`);
    t.equal(r.status, 200, `the built api serves /ui/${file}`);
    t.ok((await r.text()).length > 100);
  }

  for (const s of Object.values(services)) s.child.kill('SIGTERM');
  for (const [name, s] of Object.entries(services)) t.equal(await s.exited, 0, `${name} stops cleanly`);
});
