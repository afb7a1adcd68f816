/**
 * The three services as real processes against one PostgreSQL, a stream of task
 * submissions, and recovery measurements: shared by the chaos soak
 * (deploy/soak-harness.ts, run by deploy/soak.ts and deploy/test/soak.test.ts) and
 * the recovery benchmark (deploy/bench-recovery.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { freePort, repoRoot } from '@wombat/core/platform';
import { childEnv } from '@wombat/core/testing';

export const ADMIN_TOKEN = 'chaos-admin-token-0123456789abcdef';
export const HEARTBEAT_INTERVAL_MS = 1000;

export type ServiceName = 'api' | 'scheduler-engine' | 'worker';

export interface ServiceProcess {
  name: ServiceName;
  child: ChildProcess;
  output(): string;
  /** Every line logged at level fatal (60), kept apart from the output's tail. */
  fatalLines(): string[];
  alive(): boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * services/<name>/src/main.ts (or `o.main`, relative to the checkout) as a child process (the test
 * runner's Node, with `o.nodeArgs` before the script), its output kept.
 */
export function startProcess(name: ServiceName, env: Record<string, string>, o: { main?: string; nodeArgs?: string[] } = {}): ServiceProcess {
  const main = path.join(repoRoot, o.main ?? path.join('services', name, 'src/main.ts'));
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), main], { cwd: repoRoot, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const fatal: string[] = [];
  // Keep the tail only: a long run logs a lot. Fatal lines are kept whole, per stream.
  const add = () => {
    let partial = '';
    return (d: Buffer) => {
      const text = String(d);
      out += text;
      if (out.length > 400_000) out = out.slice(-200_000);
      const lines = (partial + text).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.includes('"level":60')) fatal.push(l);
    };
  };
  child.stdout!.on('data', add());
  child.stderr!.on('data', add());
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { name, child, output: () => out, fatalLines: () => fatal, alive: () => child.exitCode === null && child.signalCode === null, exited };
}

export interface Stack {
  apiUrl: string;
  api: ServiceProcess;
  engine: ServiceProcess;
  worker: ServiceProcess;
  all: ServiceProcess[];
  /** SIGTERM to each, then waits for them (SIGKILL after 20 s). */
  stop(): Promise<void>;
}

export async function until(what: string, check: () => boolean | Promise<boolean>, limitMs: number, procs: ServiceProcess[]): Promise<void> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (await check()) return;
    const dead = procs.find((p) => !p.alive());
    if (dead) throw new Error(`${dead.name} exited while waiting for ${what}:\n${dead.output().slice(-3000)}`);
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The environment every service of a harness gets. */
export function commonEnv(opts: { databaseUrl: string; dataRoot: string }): Record<string, string> {
  return {
    DATABASE_URL: opts.databaseUrl,
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT_MS: '10000',
    DATA_ROOT: opts.dataRoot,
    TZ: 'UTC',
  };
}

/** Each service's own environment on top of commonEnv (the api's port is the caller's). */
export function serviceEnv(name: ServiceName, apiPort: number): Record<string, string> {
  if (name === 'api') return { API_PORT: String(apiPort), API_ADMIN_TOKEN: ADMIN_TOKEN };
  if (name === 'scheduler-engine') return { ENABLE_SCHEDULER: 'true', ENGINE_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS) };
  return { WORKER_QUEUES: 'canary' };
}

/** Resolves once `p` is ready: the api answers /health 200, the engine and the worker logged their start. */
export async function waitReady(p: ServiceProcess, apiUrl: string, limitMs = 60_000): Promise<void> {
  if (p.name === 'api') await until('the api', async () => (await fetch(`${apiUrl}/health`).catch(() => undefined))?.status === 200, limitMs, [p]);
  else if (p.name === 'scheduler-engine') await until('the engine', () => p.output().includes('engine started'), limitMs, [p]);
  else await until('the worker', () => p.output().includes('"worker started"'), limitMs, [p]);
}

/** api, scheduler-engine and a canary worker on `databaseUrl`, each ready. */
export async function startStack(opts: { databaseUrl: string; dataRoot: string; teardown(fn: () => unknown): void; workerEnv?: Record<string, string> }): Promise<Stack> {
  const common = commonEnv(opts);
  const apiPort = await freePort();
  const api = startProcess('api', { ...common, ...serviceEnv('api', apiPort) });
  const engine = startProcess('scheduler-engine', { ...common, ...serviceEnv('scheduler-engine', apiPort) });
  const worker = startProcess('worker', { ...common, ...serviceEnv('worker', apiPort), WORKER_POLL_INTERVAL_SECONDS: '0.5', ...opts.workerEnv });
  const all = [api, engine, worker];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const p of all) if (p.alive()) p.child.kill('SIGTERM');
      const kill = setTimeout(() => all.forEach((p) => p.alive() && p.child.kill('SIGKILL')), 20_000);
      await Promise.all(all.map((p) => p.exited));
      clearTimeout(kill);
    })());
  opts.teardown(stop);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  for (const p of all) await waitReady(p, apiUrl);
  return { apiUrl, api, engine, worker, all, stop };
}

export interface Answer {
  at: number;
  kind: 'task' | 'fuzz';
  status: number;
  ms: number;
  code?: string;
  taskId?: string;
  /** No answer before the client's deadline (status 0), or no connection. */
  failure?: string;
  /** Status 0 because the client's deadline passed (a hung request), not a refused or reset connection. */
  timedOut?: boolean;
}

export async function post(apiUrl: string, pathname: string, body: unknown, deadlineMs: number): Promise<Omit<Answer, 'kind' | 'at'>> {
  const started = performance.now();
  try {
    const res = await fetch(apiUrl + pathname, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(deadlineMs),
    });
    const text = await res.text();
    const json = text ? (JSON.parse(text) as { task_id?: string; error?: { code?: string } }) : {};
    return {
      status: res.status,
      ms: Math.round(performance.now() - started),
      ...(json.task_id ? { taskId: json.task_id } : {}),
      ...(json.error?.code ? { code: json.error.code } : {}),
    };
  } catch (err) {
    const timedOut = (err as Error).name === 'TimeoutError';
    return { status: 0, ms: Math.round(performance.now() - started), failure: String((err as Error).message ?? err), ...(timedOut ? { timedOut } : {}) };
  }
}

/** Fuzzed bodies: a NUL or a lone surrogate in a JSON key of params. */
export const FUZZ_BODIES = [
  { path: '/api/backtests/run-async', body: { strategy: 'ma-crossover', exchange: 'upbit', symbols: ['KRW-BTC'], from: '2024-01-01T00:00:00Z', to: '2024-02-01T00:00:00Z', options: { 'a\u0000b': 1 } } },
  { path: '/api/tasks/canary', body: { '\ud800': 1 } },
];

/**
 * A canary submission every `everyMs` (each with a client deadline), and every
 * `fuzzEvery`-th request a fuzzed one, until stopped. Requests overlap: a slow
 * answer does not hold up the next request.
 */
export function startSubmissions(
  apiUrl: string,
  opts: { everyMs: number; deadlineMs: number; fuzzEvery: number; /** The canary's params (default {}) and path (default /api/tasks/canary). */ task?: () => { path: string; body: object } },
) {
  const answers: Answer[] = [];
  const inFlight = new Set<Promise<void>>();
  let n = 0;
  const timer = setInterval(() => {
    const i = n++;
    const at = Date.now();
    const fuzz = i % opts.fuzzEvery === opts.fuzzEvery - 1 ? FUZZ_BODIES[i % FUZZ_BODIES.length]! : undefined;
    const task = fuzz ?? opts.task?.() ?? { path: '/api/tasks/canary', body: {} };
    const p = post(apiUrl, task.path, task.body, opts.deadlineMs).then((a) => {
      answers.push({ ...a, at, kind: fuzz ? 'fuzz' : 'task' });
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, opts.everyMs);
  return {
    answers,
    async stop(): Promise<Answer[]> {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return answers;
    },
  };
}

export interface Recovery {
  /** From the moment PostgreSQL accepts connections again. */
  apiAcceptsMs: number;
  enginePublishesMs: number;
  engineHeartbeatsMs: number;
  workerFetchesMs: number;
}

/**
 * Milliseconds from `restartedAt` (PostgreSQL accepting connections again) until the
 * api accepts a task, the engine has published an occurrence of `scheduleId` due
 * after the restart and written a heartbeat, and a worker has started a job.
 * Timestamps come from the database and this host's clock, which are the same clock.
 */
export async function measureRecovery(opts: { apiUrl: string; databaseUrl: string; scheduleId: number; restartedAt: number; limitMs: number }): Promise<Recovery> {
  const sql = postgres(opts.databaseUrl, { max: 1, connect_timeout: 2, onnotice: () => {} });
  const since = new Date(opts.restartedAt);
  const found: Partial<Recovery> = {};
  const end = opts.restartedAt + opts.limitMs;
  try {
    while (Date.now() < end && Object.keys(found).length < 4) {
      if (found.apiAcceptsMs === undefined) {
        const a = await post(opts.apiUrl, '/api/tasks/canary', {}, 5000);
        if (a.status === 202) found.apiAcceptsMs = Date.now() - opts.restartedAt;
      }
      try {
        if (found.enginePublishesMs === undefined) {
          const [row] = await sql<{ at: Date | null }[]>`
            select min(published_at) as at from wombat.runs
            where schedule_id = ${opts.scheduleId} and published_at is not null and scheduled_for >= ${since}`;
          if (row?.at) found.enginePublishesMs = row.at.getTime() - opts.restartedAt;
        }
        if (found.engineHeartbeatsMs === undefined) {
          const [row] = await sql<{ at: Date | null }[]>`select max(last_beat_at) as at from wombat.engines where stopped_at is null`;
          if (row?.at && row.at >= since) found.engineHeartbeatsMs = row.at.getTime() - opts.restartedAt;
        }
        if (found.workerFetchesMs === undefined) {
          const [row] = await sql<{ at: Date | null }[]>`select min(started_on) as at from pgboss.job where name = 'canary' and started_on >= ${since}`;
          if (row?.at) found.workerFetchesMs = row.at.getTime() - opts.restartedAt;
        }
      } catch {
        // PostgreSQL still starting: try again
      }
      await sleep(50);
    }
  } finally {
    await sql.end({ timeout: 1 });
  }
  return {
    apiAcceptsMs: found.apiAcceptsMs ?? Number.NaN,
    enginePublishesMs: found.enginePublishesMs ?? Number.NaN,
    engineHeartbeatsMs: found.engineHeartbeatsMs ?? Number.NaN,
    workerFetchesMs: found.workerFetchesMs ?? Number.NaN,
  };
}
