/**
 * Debian's PgBouncer in transaction mode in front of a test database, on a private
 * port: the pooler test (deploy/test/pgbouncer.test.ts) runs Wombat through it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { freePort } from '@wombat/core/platform';

export const PGBOUNCER_CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'];

export function findPgBouncer(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).stdout.trim();
  return onPath || PGBOUNCER_CANDIDATES.find((p) => existsSync(p));
}

/** The settings Wombat was tested with; deploy/README.md quotes them. */
export const POOLER_SETTINGS = {
  pool_mode: 'transaction',
  max_client_conn: '500',
  default_pool_size: '20',
  // Stand-ins for the server-side deadlines a transaction pooler will not pass at connection start.
  query_timeout: '35',
  idle_transaction_timeout: '60',
  server_reset_query: 'DISCARD ALL',
} as const;

export interface PgBouncer {
  /** The same database through the pooler. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** PgBouncer in transaction mode for `targetUrl`'s database; stopped and removed at teardown. */
export async function startPgBouncer(t: { teardown(fn: () => unknown): void }, targetUrl: string, bin = findPgBouncer()): Promise<PgBouncer> {
  if (!bin) throw new Error('pgbouncer is not installed (Debian: apt-get install pgbouncer)');
  const target = new URL(targetUrl);
  const dbname = decodeURIComponent(target.pathname.slice(1));
  const root = mkdtempSync(path.join(tmpdir(), 'wombat-pgbouncer-'));
  // PgBouncer refuses to run as root: it runs as postgres, which must reach its directory.
  chmodSync(root, 0o777);
  const port = await freePort();
  const password = target.password ? ` password=${decodeURIComponent(target.password)}` : '';
  const ini = [
    '[databases]',
    `${dbname} = host=${target.hostname} port=${target.port || 5432} dbname=${dbname} user=${decodeURIComponent(target.username) || 'postgres'}${password}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    `unix_socket_dir =`,
    'auth_type = any',
    ...Object.entries(POOLER_SETTINGS).map(([k, v]) => `${k} = ${v}`),
    `pidfile = ${root}/pgbouncer.pid`,
  ].join('\n');
  const config = path.join(root, 'pgbouncer.ini');
  writeFileSync(config, `${ini}\n`);
  chmodSync(config, 0o644);
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? userIds('postgres') : undefined;
  const child: ChildProcess = spawn(bin, [config], { stdio: ['ignore', 'pipe', 'pipe'], ...(ids ? { uid: ids.uid, gid: ids.gid } : {}) });
  let out = '';
  child.stdout!.on('data', (d) => (out += String(d)));
  child.stderr!.on('data', (d) => (out += String(d)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(kill);
      }
      rmSync(root, { recursive: true, force: true });
    })());
  t.teardown(stop);
  const url = `postgres://${encodeURIComponent(decodeURIComponent(target.username) || 'postgres')}@127.0.0.1:${port}/${encodeURIComponent(dbname)}`;
  // Ready once a query goes through it to the server.
  const end = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited at start:\n${out}`);
    const sql = postgres(url, { max: 1, prepare: false, connect_timeout: 1, onnotice: () => {} });
    try {
      await sql`select 1`;
      break;
    } catch (err) {
      if (Date.now() > end) throw new Error(`pgbouncer did not answer within 10 s: ${(err as Error).message}\n${out}`, { cause: err });
      await sleep(100);
    } finally {
      await sql.end({ timeout: 0 });
    }
  }
  return { url, port, stop };
}

function userIds(name: string): { uid: number; gid: number } {
  const uid = Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) throw new Error(`no user ${name} to run pgbouncer as`);
  return { uid, gid };
}
