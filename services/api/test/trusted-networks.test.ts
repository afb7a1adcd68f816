import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import path from 'node:path';
import { ConfigError, createLogger, repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import t from 'tap';
import { loadConfig } from '../src/config.ts';
import { startApi } from '../src/server.ts';
import { clientAddress, parseAddressSet } from '../src/trusted-networks.ts';
import { ADMIN_TOKEN, READ_TOKEN } from './helpers.ts';

/**
 * API_TRUSTED_NETWORKS: the old clients' token-less curl calls, accepted from a closed network and
 * nowhere else. Requests come from distinct loopback addresses (127.0.0.2 is not 127.0.0.1) to an api
 * listening on :: (IPv4 peers then read ::ffff:127.0.0.2) and from ::1.
 */
const tdb = await createTestDatabase(t);

// The replaced system's client, as its README had it:
//   curl -X POST http://wombat:8000/api/backtests/run-async -H 'Content-Type: application/json' -d '{...}'
const OLD_BODY = '{"strategy": "volume_zone_breakout", "symbols": ["BTC_KRW", "ETH_KRW"], "start_date": "2024-01-01", "end_date": "2024-12-31"}';

interface From {
  host?: '127.0.0.1' | '::1';
  localAddress?: string;
  headers?: Record<string, string>;
}

function curl(port: number, method: string, urlPath: string, from: From, body?: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: from.host ?? '127.0.0.1',
        port,
        method,
        path: urlPath,
        ...(from.localAddress ? { localAddress: from.localAddress } : {}),
        headers: { 'user-agent': 'curl/7.88.1', accept: '*/*', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...from.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function start(env: Record<string, string>) {
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const log = createLogger({ name: 'api', level: 'info', format: 'json', destination: { write: (s: string) => lines.push(JSON.parse(s)) } as never });
  const config = loadConfig({ DATABASE_URL: tdb.url, API_HOST: '::', API_PORT: '0', API_ADMIN_TOKEN: ADMIN_TOKEN, API_READ_TOKEN: READ_TOKEN, ...env });
  const api = await startApi({ config, databaseUrl: tdb.url, embedded: false, log });
  t.teardown(() => api.stop());
  return { port: (api.app.server.address() as { port: number }).port, lines };
}

const accepted = (lines: { msg: string }[]) => lines.filter((l) => l.msg === 'request without a token accepted as admin from API_TRUSTED_NETWORKS');

t.test('by default a write without a token is still 401, wherever it comes from', async (t) => {
  const { port, lines } = await start({});
  const res = await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.2' }, OLD_BODY);
  t.equal(res.status, 401);
  t.equal(res.body.error.code, 'unauthorized');
  t.same(lines.filter((l) => /API_TRUSTED_NETWORKS/.test(l.msg)), [], 'no warning, nothing trusted');
});

t.test('a token-less request from a trusted network is admin, logged with its address; elsewhere it is 401', async (t) => {
  const { port, lines } = await start({ API_TRUSTED_NETWORKS: '127.0.0.2/32, ::1' });
  const warning = lines.find((l) => l.msg.startsWith('API_TRUSTED_NETWORKS is set'));
  t.match(warning, { level: 40, trustedNetworks: ['127.0.0.2/32', '::1/128'], trustedProxies: [] }, 'a warning at start lists the networks');

  const fromTrusted = await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.2' }, OLD_BODY);
  t.equal(fromTrusted.status, 202, JSON.stringify(fromTrusted.body));
  const [run] = await tdb.sql<{ job: string }[]>`select job from wombat.runs where id = ${fromTrusted.body.task_id}`;
  t.equal(run?.job, 'backtest');
  // The IPv4 peer reaches an api on :: as ::ffff:127.0.0.2: the IPv4 network still holds it.
  t.match(accepted(lines), [{ peer: '::ffff:127.0.0.2', client: '::ffff:127.0.0.2', method: 'POST', url: '/api/backtests/run-async' }]);

  const fromV6 = await curl(port, 'POST', '/api/backtests/retry/00000000-0000-4000-8000-000000000000', { host: '::1' });
  t.equal(fromV6.status, 404, 'past auth from ::1: the task is unknown');

  const fromElsewhere = await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.1' }, OLD_BODY);
  t.equal(fromElsewhere.status, 401);

  // A token that is sent must be right, even from the trusted network.
  const wrong = await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.2', headers: { authorization: 'Bearer not-the-token-at-all' } }, OLD_BODY);
  t.equal(wrong.status, 401);
  const reader = await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.2', headers: { authorization: `Bearer ${READ_TOKEN}` } }, OLD_BODY);
  t.equal(reader.status, 403, 'the read token stays read-only');

  t.same((await curl(port, 'GET', '/api/whoami', { localAddress: '127.0.0.2' })).body, { role: 'admin', reads: 'open' }, 'the dashboard shows its actions');
  t.same((await curl(port, 'GET', '/api/whoami', { localAddress: '127.0.0.1' })).body, { role: 'anonymous', reads: 'open' });
});

t.test('X-Forwarded-For is believed only from a trusted proxy, its right-most untrusted address counting', async (t) => {
  const { port, lines } = await start({ API_TRUSTED_NETWORKS: '10.0.0.0/8', API_TRUSTED_PROXIES: '127.0.0.3, 172.16.0.0/12' });
  t.match(lines.find((l) => l.msg.startsWith('API_TRUSTED_NETWORKS is set')), { trustedNetworks: ['10.0.0.0/8'], trustedProxies: ['127.0.0.3/32', '172.16.0.0/12'] });
  const via = (localAddress: string, forwardedFor: string) =>
    curl(port, 'POST', '/api/backtests/run-async', { localAddress, headers: { 'x-forwarded-for': forwardedFor } }, OLD_BODY);

  t.equal((await via('127.0.0.3', '10.1.2.3')).status, 202, 'the proxy says the client is 10.1.2.3');
  t.match(accepted(lines).at(-1), { peer: '::ffff:127.0.0.3', client: '10.1.2.3' });
  t.equal((await via('127.0.0.3', '10.1.2.3, 172.16.0.5')).status, 202, 'through two trusted proxies');
  t.equal((await via('127.0.0.3', '203.0.113.9, 10.1.2.3')).status, 202, 'what the client wrote left of its own address counts for nothing');
  t.equal((await via('127.0.0.3', '10.1.2.3, 203.0.113.9')).status, 401, 'the right-most untrusted address is outside');
  t.equal((await via('127.0.0.3', '10.1.2.3, not-an-address')).status, 401, 'a hop that is no address makes the client unknown');
  t.equal((await via('127.0.0.2', '10.1.2.3')).status, 401, 'a peer that is no trusted proxy is not believed');
  t.equal((await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.3' }, OLD_BODY)).status, 401, 'the proxy itself is not in the network');
});

t.test('a peer in the network that forwards for others without being a declared proxy earns no trust', async (t) => {
  const { port, lines } = await start({ API_TRUSTED_NETWORKS: '127.0.0.4' });
  const res = await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.4', headers: { 'x-forwarded-for': '198.51.100.7' } }, OLD_BODY);
  t.equal(res.status, 401);
  t.match(lines.find((l) => /X-Forwarded-For from a peer not in API_TRUSTED_PROXIES/.test(l.msg)), { peer: '::ffff:127.0.0.4', forwardedFor: '198.51.100.7' });
  t.equal((await curl(port, 'POST', '/api/backtests/run-async', { localAddress: '127.0.0.4' }, OLD_BODY)).status, 202, 'its own requests are trusted');
});

t.test('client addresses: IPv4-mapped peers, ports in hops, IPv6 proxies', async (t) => {
  const proxies = parseAddressSet('10.0.0.5, fd00::/8');
  t.equal(clientAddress('::ffff:10.0.0.5', '192.0.2.1', proxies), '192.0.2.1', 'an IPv4-mapped peer matches its IPv4 entry');
  t.equal(clientAddress('10.0.0.5', '192.0.2.1:51234', proxies), '192.0.2.1', 'a hop with a port');
  t.equal(clientAddress('fd00::1', '[2001:db8::7]:443, fd00::2', proxies), '2001:db8::7');
  t.equal(clientAddress('10.0.0.5', 'fd00::9, 10.0.0.5', proxies), 'fd00::9', 'every hop a proxy: the left-most');
  t.equal(clientAddress('10.0.0.6', '192.0.2.1', proxies), '10.0.0.6', 'not a proxy: the peer itself');
  t.equal(clientAddress('10.0.0.5', undefined, proxies), '10.0.0.5');
  const networks = parseAddressSet('10.0.0.0/8,::ffff:192.168.0.0/112, 2001:db8::/32');
  t.ok(networks.has('::ffff:10.9.8.7'));
  t.ok(networks.has('192.168.3.4'), 'an IPv4-mapped IPv6 network holds the IPv4 address');
  t.ok(networks.has('2001:db8:1::1'));
  t.notOk(networks.has('11.0.0.1'));
  t.notOk(networks.has('2001:db9::1'));
  t.notOk(networks.has('not-an-address'));
});

t.test('a bad network is a configuration error naming the setting and each bad entry', async (t) => {
  const base = { DATABASE_URL: tdb.url, API_ADMIN_TOKEN: ADMIN_TOKEN };
  t.throws(() => loadConfig({ ...base, API_TRUSTED_NETWORKS: '10.0.0.0/33, fd00::/8, ten.0.0.0/8, ::1/129, 10.0.0.0/x' }), ConfigError);
  try {
    loadConfig({ ...base, API_TRUSTED_NETWORKS: '10.0.0.0/33, fd00::/8, ten.0.0.0/8, ::1/129, 10.0.0.0/x', API_TRUSTED_PROXIES: '300.1.1.1' });
  } catch (err) {
    const problems = (err as ConfigError).problems;
    t.equal(problems.length, 2);
    t.match(problems[0], /^API_TRUSTED_NETWORKS=".*": "10\.0\.0\.0\/33" has a bad prefix length: IPv4 takes \/0 to \/32; "ten\.0\.0\.0\/8" is not an IPv4 or IPv6 network: write it like 10\.0\.0\.0\/8.*; "::1\/129" has a bad prefix length: IPv6 takes \/0 to \/128; "10\.0\.0\.0\/x" has a bad prefix length/);
    t.notMatch(problems[0], /fd00::\/8"/, 'good entries are not named');
    t.match(problems[1], /^API_TRUSTED_PROXIES="300\.1\.1\.1": "300\.1\.1\.1" is not an IPv4 or IPv6 network/);
  }
  // The service itself: one line on stderr, exit 1, before touching the database.
  const out = spawnSync(process.execPath, [path.join(repoRoot, 'services/api/src/main.ts')], {
    env: { ...process.env, ...base, API_TRUSTED_NETWORKS: '10.0.0.0/33' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(out.status, 1);
  t.match(out.stderr, /invalid configuration: API_TRUSTED_NETWORKS="10\.0\.0\.0\/33": "10\.0\.0\.0\/33" has a bad prefix length/);
});
