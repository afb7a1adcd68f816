import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { repoRoot, startBoss, type PgBoss } from '@wombat/core/platform';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';
import { buildApp } from '../src/app.ts';
import type { App } from '../src/deps.ts';
import type { AuthOptions } from '../src/auth.ts';

export const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
export const READ_TOKEN = 'read-token-for-tests-0123456789';

export interface TestApi {
  app: App;
  url: string;
  database: TestDatabase;
  boss: PgBoss;
  /** fetch against the api; JSON bodies are sent and parsed for you. */
  call(method: string, path: string, opts?: { body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string }): Promise<{ status: number; body: any; headers: Headers }>;
}

interface Tap {
  teardown(fn: () => unknown): void;
}

/** A migrated database of the test file's own, a producer pg-boss and the api listening on a free port. */
export async function startTestApi(t: Tap, opts: { auth?: Partial<AuthOptions>; shareWith?: TestApi } = {}): Promise<TestApi> {
  // Another app on the same database and pg-boss: a migrated database costs a second or two.
  const database = opts.shareWith?.database ?? (await createTestDatabase(t));
  let boss = opts.shareWith?.boss;
  if (!boss) {
    const started = await startBoss({ url: database.url, role: 'producer', log: database.log, poolSize: 2 });
    t.teardown(() => started.stop({ graceful: false, close: true }));
    boss = started;
  }
  const app = await buildApp({
    db: database.db,
    sql: database.sql,
    boss,
    log: database.log,
    auth: { adminToken: ADMIN_TOKEN, readToken: READ_TOKEN, reads: 'open', ...opts.auth },
    taskResultTtlDays: 7,
    defaultTimezone: 'Asia/Seoul',
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  async function call(method: string, path: string, o: { body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string } = {}) {
    const headers: Record<string, string> = { ...o.headers };
    const token = o.token === undefined ? ADMIN_TOKEN : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | undefined = o.raw;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text.length > 0) parsed = JSON.parse(text);
    return { status: res.status, body: parsed as any, headers: res.headers };
  }
  return { app, url, database, boss, call };
}

export const backtestParams = {
  strategy: 'ma-crossover',
  exchange: 'upbit',
  symbols: ['KRW-BTC'],
  timeframe: '1D',
  from: '2024-01-01T00:00:00Z',
  to: '2024-06-01T00:00:00Z',
};

/**
 * Starts the real scheduler-engine or worker as a child process on `databaseUrl`;
 * every one started this way is stopped (SIGTERM) at the file's teardown.
 */
export function serviceStarter(t: Tap, databaseUrl: string): (name: 'worker' | 'scheduler-engine', env: Record<string, string>) => ChildProcess {
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
          }),
      ),
    );
  });
  return (name, env) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'services', name, 'src', 'main.ts')], {
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn', LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', process.env.TEST_LOG_LEVEL ? 'inherit' : 'ignore', 'inherit'],
    });
    children.push(child);
    return child;
  };
}

/** A local Upbit that answers every candle request as Upbit answers an unknown market: fetch-candles fails at once, for good. */
export async function unknownMarketUpbit(t: Tap): Promise<string> {
  const upbit = createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"name":"404","message":"Code not found"}}');
  });
  await new Promise<void>((resolve) => upbit.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => upbit.close(() => resolve())));
  return `http://127.0.0.1:${(upbit.address() as AddressInfo).port}`;
}
