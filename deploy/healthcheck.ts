/**
 * A container health command (docker-compose.yml healthcheck): exit 0 when this
 * host's service is alive, 1 with one line saying why not.
 *
 *   node deploy/healthcheck.ts api                 GET /health on API_PORT
 *   node deploy/healthcheck.ts scheduler-engine    a live heartbeat row in wombat.engines
 *   node deploy/healthcheck.ts worker              a live heartbeat row in wombat.workers
 *
 * Heartbeat rows name their host (the container's hostname); live is the rule the
 * engines use: not stopped, and beaten within three heartbeat intervals. An
 * optional second argument names another host (tests, or checking from outside).
 */
import { hostname } from 'node:os';
import { createSql, databaseFields, int, loadConfig, SQLSTATE, sqlState } from '@wombat/core/platform';

const TABLES = { 'scheduler-engine': 'engines', worker: 'workers' } as const;
const [kind, host = hostname()] = process.argv.slice(2);

function done(code: 0 | 1, line: string): never {
  (code === 0 ? process.stdout : process.stderr).write(`${line}\n`);
  process.exit(code);
}

if (kind === 'api') {
  const { port } = loadConfig({ port: int('API_PORT', 'api port', { default: 8000, min: 1, max: 65535 }) }, process.env);
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(5000) }).catch((err: Error) => err);
  if (res instanceof Error) done(1, `api: no answer on port ${port}: ${res.message}`);
  await res.body?.cancel();
  done(res.ok ? 0 : 1, `api: /health answered ${res.status}`);
}

if (kind !== 'scheduler-engine' && kind !== 'worker') {
  done(1, 'usage: node deploy/healthcheck.ts api | scheduler-engine | worker [host]');
}

// The session address when there is one: a direct connection, whatever pooler DATABASE_URL names.
const addresses = loadConfig({ databaseUrl: databaseFields.databaseUrl, databaseSessionUrl: databaseFields.databaseSessionUrl }, process.env);
const databaseUrl = addresses.databaseSessionUrl ?? addresses.databaseUrl;
if (!databaseUrl || databaseUrl === 'embedded') done(1, `${kind}: DATABASE_URL must name the PostgreSQL the service uses`);
const sql = createSql({ url: databaseUrl, poolSize: 1, applicationName: 'wombat-healthcheck', connectTimeoutSeconds: 5 });
try {
  const table = TABLES[kind];
  const rows = await sql<{ pid: number; age_ms: number }[]>`
    select pid, (extract(epoch from now() - last_beat_at) * 1000)::int as age_ms
      from ${sql('wombat')}.${sql(table)}
     where host = ${host} and stopped_at is null
       and last_beat_at > now() - heartbeat_interval_ms * interval '3 milliseconds'
     order by last_beat_at desc limit 1`;
  if (rows.length === 0) done(1, `${kind}: no live heartbeat for host ${host} in wombat.${table}`);
  done(0, `${kind}: pid ${rows[0]!.pid} on ${host} beat ${rows[0]!.age_ms} ms ago`);
} catch (err) {
  const missing = sqlState(err) === SQLSTATE.undefinedTable;
  done(1, missing ? `${kind}: wombat.${TABLES[kind]} does not exist; run the migrations` : `${kind}: ${(err as Error).message}`);
} finally {
  await sql.end({ timeout: 1 });
}
