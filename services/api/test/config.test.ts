import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger, describeSchema, repoRoot } from '@wombat/core/platform';
import t from 'tap';
import { isEmbeddedDatabaseUrl, resolveAdminToken } from '../src/admin-token.ts';
import { apiConfigSchema, loadConfig } from '../src/config.ts';

t.test('defaults listen on 127.0.0.1:8000 with open reads and a 7-day task TTL', async (t) => {
  const c = loadConfig({});
  t.match(c, { host: '127.0.0.1', port: 8000, authReads: 'open', taskResultTtlDays: 7, adminToken: undefined });
});

t.test('bad values are all reported at once, and token values never appear in the message', async (t) => {
  const secret = 'short';
  t.throws(() => loadConfig({ API_PORT: 'eighty', API_AUTH_READS: 'sometimes' }), /API_PORT[^]*API_AUTH_READS/);
  t.throws(() => loadConfig({ API_ADMIN_TOKEN: secret }), /API_ADMIN_TOKEN.*at least 16/);
  try {
    loadConfig({ API_ADMIN_TOKEN: secret });
  } catch (err) {
    t.notOk((err as Error).message.includes(`=${secret}`));
  }
  const same = 'same-token-0123456789';
  t.throws(() => loadConfig({ API_ADMIN_TOKEN: same, API_READ_TOKEN: same }), /must differ/);
});

t.test('deploy/.env.example documents every api variable', async (t) => {
  const example = readFileSync(path.join(repoRoot, 'deploy/.env.example'), 'utf8');
  for (const v of describeSchema(apiConfigSchema)) t.match(example, new RegExp(`^${v.env}=`, 'm'), v.env);
});

t.test('a local run generates an admin token once, keeps it in a 0600 file and logs only the path', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'wombat-api-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'sub', 'api-admin-token');
  const lines: string[] = [];
  const log = createLogger({ name: 'api', level: 'info', format: 'json', destination: { write: (s: string) => lines.push(s) } as never });
  const token = await resolveAdminToken({ configured: undefined, embedded: true, file, log });
  t.ok(token && token.length >= 32);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.equal(readFileSync(file, 'utf8').trim(), token);
  t.equal(await resolveAdminToken({ configured: undefined, embedded: true, file, log }), token, 'the same token on the next start');
  t.ok(lines.some((l) => l.includes(file)), 'the file path is logged');
  t.notOk(lines.some((l) => l.includes(token!)), 'the token is not');
  t.equal(await resolveAdminToken({ configured: 'configured-token-0123456789', embedded: true, file, log }), 'configured-token-0123456789');
  t.equal(await resolveAdminToken({ configured: undefined, embedded: false, file, log }), undefined, 'nothing is generated for a real database');
  t.ok(lines.some((l) => l.includes('API_ADMIN_TOKEN is not set')));
});

t.test('the embedded database is recognised by its loopback address and port, also when passed as DATABASE_URL', async (t) => {
  t.ok(isEmbeddedDatabaseUrl('postgres://postgres:wombat@127.0.0.1:54329/wombat', 54329));
  t.ok(isEmbeddedDatabaseUrl('postgres://postgres@localhost:54329/wombat', 54329));
  t.notOk(isEmbeddedDatabaseUrl('postgres://postgres@127.0.0.1:5432/wombat', 54329));
  t.notOk(isEmbeddedDatabaseUrl('postgres://wombat@db.internal:54329/wombat', 54329));
  t.notOk(isEmbeddedDatabaseUrl('not a url', 54329));
});
