/**
 * Fail-over to a streaming standby, with real parts: a primary and a standby made
 * with `pg_basebackup -R` (PostgreSQL's own binaries, private ports), Wombat's three
 * services behind one stable address (a small TCP proxy standing in for a virtual IP
 * or a managed writer endpoint), the primary killed (`pg_ctl stop -m immediate`), the
 * standby promoted and the address re-pointed. Shared by deploy/test/failover.test.ts
 * and `npm run bench:recovery`.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import postgres from 'postgres';
import { createLogger, freePort } from '@wombat/core/platform';
import { migrateAll } from '@wombat/core/setup';
import { ADMIN_TOKEN, measureRecovery, startStack, startSubmissions, type Recovery } from './outage-harness.ts';
import { readExecutions } from './soak-executions.ts';

/** Directories holding initdb, pg_ctl and pg_basebackup (Debian's PostgreSQL; the embedded build has no pg_basebackup). */
const BIN_CANDIDATES = ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin'];

export function findPostgresBin(): string | undefined {
  return BIN_CANDIDATES.find((d) => ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'].every((b) => existsSync(path.join(d, b))));
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

function ids(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  return { uid, gid };
}

/** A PostgreSQL binary, as user postgres when we are root (PostgreSQL refuses to run as root). */
function pg(bin: string, tool: string, args: string[], timeoutMs = 60_000): string {
  const r = spawnSync(path.join(bin, tool), args, { encoding: 'utf8', timeout: timeoutMs, ...(ids() ?? {}) });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** Connections to whichever server is current; re-pointing drops the open ones, as a moved address does. */
export interface Proxy {
  port: number;
  repoint(port: number): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  let target = targetPort;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    repoint(p) {
      target = p;
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface Pair {
  primaryPort: number;
  standbyPort: number;
  /** Kills the primary as a crash would: no shutdown checkpoint, no goodbye to clients. */
  killPrimary(): void;
  /** Promotes the standby and clears its inherited synchronous_standby_names (see deploy/README.md). */
  promote(): Promise<void>;
}

/** A primary and a streaming standby of it (synchronous or not), on private ports; removed at teardown. */
export async function startPair(t: Teardown, opts: { bin: string; synchronous: boolean }): Promise<Pair> {
  const root = mkdtempSync(path.join(tmpdir(), 'wombat-failover-'));
  chmodSync(root, 0o777);
  const primary = path.join(root, 'primary');
  const standby = path.join(root, 'standby');
  const [primaryPort, standbyPort] = [await freePort(), await freePort()];
  const running = new Set<string>();
  t.teardown(() => {
    for (const dir of running) spawnSync(path.join(opts.bin, 'pg_ctl'), ['-D', dir, 'stop', '-m', 'immediate'], { ...(ids() ?? {}), timeout: 30_000 });
    rmSync(root, { recursive: true, force: true });
  });
  pg(opts.bin, 'initdb', ['-D', primary, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const common = ["listen_addresses = '127.0.0.1'", `unix_socket_directories = '${root}'`, 'wal_level = replica', 'max_wal_senders = 5', 'hot_standby = on', 'fsync = off', 'max_connections = 200', 'wal_keep_size = 256MB'];
  appendFileSync(path.join(primary, 'postgresql.conf'), [...common, `port = ${primaryPort}`, opts.synchronous ? "synchronous_standby_names = 'standby1'" : ''].join('\n') + '\n');
  pg(opts.bin, 'pg_ctl', ['-D', primary, '-l', path.join(root, 'primary.log'), '-w', 'start']);
  running.add(primary);
  pg(opts.bin, 'pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', standby, '-R', '-X', 'stream']);
  // cluster_name is the standby's application_name on the primary: what synchronous_standby_names names.
  appendFileSync(path.join(standby, 'postgresql.conf'), `port = ${standbyPort}\ncluster_name = 'standby1'\n`);
  pg(opts.bin, 'pg_ctl', ['-D', standby, '-l', path.join(root, 'standby.log'), '-w', 'start']);
  running.add(standby);
  // Streaming, and synchronous when asked for.
  const sql = postgres(`postgres://postgres@127.0.0.1:${primaryPort}/postgres`, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const until = Date.now() + 20_000;
    for (;;) {
      const [row] = await sql<{ state: string; sync_state: string }[]>`select state, sync_state from pg_stat_replication`;
      if (row?.state === 'streaming' && (!opts.synchronous || row.sync_state === 'sync')) break;
      if (Date.now() > until) throw new Error(`the standby did not stream within 20 s (${JSON.stringify(row)})`);
      await sleep(100);
    }
  } finally {
    await sql.end({ timeout: 1 });
  }
  return {
    primaryPort,
    standbyPort,
    killPrimary() {
      pg(opts.bin, 'pg_ctl', ['-D', primary, 'stop', '-m', 'immediate']);
      running.delete(primary);
    },
    async promote() {
      pg(opts.bin, 'pg_ctl', ['-D', standby, '-w', 'promote']);
      const s = postgres(`postgres://postgres@127.0.0.1:${standbyPort}/postgres`, { max: 1, onnotice: () => {}, connect_timeout: 5 });
      try {
        // A promoted standby keeps the primary's settings: with synchronous_standby_names naming a
        // standby that no longer exists, every commit would wait for it forever.
        await s`alter system set synchronous_standby_names = ''`;
        await s`select pg_reload_conf()`;
      } finally {
        await s.end({ timeout: 1 });
      }
    },
  };
}

export interface FailoverReport {
  synchronous: boolean;
  /** From the promotion (standby promoted and the address re-pointed). */
  recovery: Recovery;
  accepted: number;
  /** Accepted (202) before the kill and missing on the new primary. */
  lostAccepted: string[];
  /** Accepted after the re-point and missing: never allowed. */
  lostAfter: string[];
  /** Two runs for one occurrence of the schedule. */
  publishedTwice: number;
  /** Runs whose handler completed twice. */
  completedTwice: string[];
  /** Runs still unfinished `settleMs` after the fail-over, published before it. */
  stuck: string[];
  outageMs: number;
}

/** The whole scenario: services on the proxy, submissions and a schedule every second, the fail-over, the checks. */
export async function runFailover(t: Teardown, opts: { bin: string; synchronous: boolean; settleMs?: number }): Promise<FailoverReport> {
  const pair = await startPair(t, opts);
  const proxy = await startProxy(pair.primaryPort);
  t.teardown(() => proxy.close());
  const admin = postgres(`postgres://postgres@127.0.0.1:${pair.primaryPort}/postgres`, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  await admin`create database wombat`;
  await admin.end({ timeout: 1 });
  const url = `postgres://postgres@127.0.0.1:${proxy.port}/wombat`;
  await migrateAll({ url, log: createLogger({ name: 'failover', level: 'silent', format: 'json' }) });
  const dataRoot = mkdtempSync(path.join(tmpdir(), 'wombat-failover-data-'));
  t.teardown(() => rmSync(dataRoot, { recursive: true, force: true }));
  const executionLog = path.join(dataRoot, 'executions.jsonl');
  const stack = await startStack({ databaseUrl: url, dataRoot, teardown: t.teardown.bind(t), workerEnv: { WORKER_EXECUTION_LOG: executionLog } });
  const created = await fetch(`${stack.apiUrl}/api/schedules`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'failover-every-second', job: 'canary', every: '1s', overlap: 'allow', missed: 'skip' }),
  });
  const scheduleId = ((await created.json()) as { id: number }).id;
  const subs = startSubmissions(stack.apiUrl, { everyMs: 50, deadlineMs: 10_000, fuzzEvery: 1_000_000 });
  await sleep(3000);
  const killedAt = Date.now();
  pair.killPrimary();
  await pair.promote();
  proxy.repoint(pair.standbyPort);
  const promotedAt = Date.now();
  const recovery = await measureRecovery({ apiUrl: stack.apiUrl, databaseUrl: url, scheduleId, restartedAt: promotedAt, limitMs: 30_000 });
  await sleep(2000);
  const answers = await subs.stop();
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  t.teardown(() => sql.end({ timeout: 1 }));
  // Settled: what was published before the fail-over has ended (retries and the reconciler included).
  const settleUntil = Date.now() + (opts.settleMs ?? 30_000);
  let stuck: string[];
  for (;;) {
    const rows = await sql<{ id: string }[]>`
      select id from wombat.runs where created_at < ${new Date(promotedAt)} and state in ('queued', 'running', 'retrying')`;
    stuck = rows.map((r) => r.id);
    if (stuck.length === 0 || Date.now() > settleUntil) break;
    await sleep(250);
  }
  await stack.stop();
  const accepted = answers.filter((a) => a.status === 202 && a.taskId);
  const found = new Set((await sql<{ id: string }[]>`select id from wombat.runs where id = any(${accepted.map((a) => a.taskId!)}::uuid[])`).map((r) => r.id));
  const missing = accepted.filter((a) => !found.has(a.taskId!));
  const [dup] = await sql<{ n: number }[]>`
    select count(*)::int as n from (select 1 from wombat.runs where schedule_id = ${scheduleId} group by scheduled_for having count(*) > 1) d`;
  const completions = new Map<string, number>();
  for (const e of readExecutions(executionLog)) if (e.outcome === 'completed') completions.set(e.run, (completions.get(e.run) ?? 0) + 1);
  return {
    synchronous: opts.synchronous,
    recovery,
    accepted: accepted.length,
    lostAccepted: missing.filter((a) => a.at < killedAt).map((a) => a.taskId!),
    lostAfter: missing.filter((a) => a.at >= killedAt).map((a) => a.taskId!),
    publishedTwice: dup!.n,
    completedTwice: [...completions].filter(([, n]) => n > 1).map(([run]) => run),
    stuck,
    outageMs: promotedAt - killedAt,
  };
}
