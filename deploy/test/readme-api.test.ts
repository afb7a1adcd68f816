/**
 * The README's api tour (with the canary drill and the alert calls), run as written against a real api on its local
 * (embedded-style) database: only the address changes (a free port instead of
 * 8000) and each curl fails on an HTTP error (-f), so every line must succeed.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase } from '@wombat/core/testing';
import { readmeBlock, startApiProcess } from './helpers.ts';

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';

t.test('every line of "Using the api", the canary drill and the alert calls works against a running api', { skip: (have('curl') && have('jq')) || ci ? false : 'needs curl and jq' }, async (t) => {
  const db = await createTestDatabase(t);
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-readme-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, '.wombat'));
  // The api generates the local admin token when its database is the embedded one (loopback, EMBEDDED_PG_PORT).
  const api = await startApiProcess(t, { DATABASE_URL: db.url, EMBEDDED_PG_PORT: new URL(db.url).port, API_ADMIN_TOKEN_FILE: path.join(dir, '.wombat/api-admin-token') });
  const { port } = api;
  t.match(api.output(), /"msg":"api listening"/, 'the api is up');

  // The tour, then the canary drill (the worker's README) and the alert calls (the engine's), which use its $TOKEN.
  const lines = [
    ...readmeBlock('## Using the api'),
    ...readmeBlock('The `canary` job takes', 'services/worker/README.md'),
    ...readmeBlock('At `ALERT_DAILY_REPORT_TIME`', 'services/scheduler-engine/README.md'),
  ];
  t.ok(lines.length >= 12);
  const script = ['set -eu', ...lines]
    .join('\n')
    .replaceAll('localhost:8000', `127.0.0.1:${port}`)
    .replaceAll('curl -s ', 'curl -sf ')
    .concat('\necho "TASK=$TASK"\n');
  const run = spawnSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  t.equal(run.status, 0, 'every line succeeds', { stdout: run.stdout, stderr: run.stderr });
  t.match(run.stdout, /"schedule_id"|"name":"btc-hourly"|btc-hourly/, 'the schedule was created');
  t.match(run.stdout, /TASK=[0-9a-f-]{36}\n/, 'the task id came back');
  t.match(run.stdout, /wombat_|# HELP/, 'metrics answered');
  t.match(run.stdout, /"task_id":"[0-9a-f-]{36}"/, 'the canary drill was accepted');

  api.stop();
  t.equal(await api.exited, 0, 'the api stops cleanly');
});
