import t from 'tap';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, repoRoot } from '@wombat/core/platform';
import { childEnv, createTestDatabase } from '@wombat/core/testing';
import { readmeBlock } from './helpers.ts';

const hasCompose = spawnSync('sh', ['-c', 'command -v docker-compose']).status === 0;
const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';

/** Each service's block of a `docker-compose config` rendering, by name. */
function serviceBlocks(yaml: string): Map<string, string> {
  const lines = yaml.split('\n');
  const blocks = new Map<string, string>();
  let current: string | undefined;
  for (const line of lines.slice(lines.indexOf('services:') + 1)) {
    if (/^\S/.test(line)) break;
    const name = /^ {2}([a-z-]+):$/.exec(line)?.[1];
    if (name) blocks.set((current = name), '');
    else if (current) blocks.set(current, `${blocks.get(current)}${line}\n`);
  }
  return blocks;
}

t.test('compose works with the README commands: .env made by the first, docker-compose config passes', { skip: hasCompose || ci ? false : 'docker-compose is not installed here (.ci/run installs it)' }, async (t) => {
  t.ok(hasCompose, 'docker-compose is installed');
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-compose-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(path.join(repoRoot, 'docker-compose.yml'), path.join(dir, 'docker-compose.yml'));
  const compose = (...args: string[]) => spawnSync('docker-compose', args, { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });

  const refused = compose('config', '-q');
  t.not(refused.status, 0, 'without .env compose refuses to start');
  t.match(refused.stderr, /API_ADMIN_TOKEN is not set; make \.env as the README says/);

  const lines = readmeBlock('## Production with Docker');
  t.match(lines[0], /^printf 'API_ADMIN_TOKEN=.*> \.env$/, 'the README first makes .env');
  execFileSync('sh', ['-c', lines[0]!], { cwd: dir });
  t.match(readFileSync(path.join(dir, '.env'), 'utf8'), /^API_ADMIN_TOKEN=[a-zA-Z0-9]{40}\n$/);
  for (const line of lines.slice(1)) t.match(line, /^docker compose (up|ps)\b/, `a compose command: ${line}`);

  const quiet = compose('config', '-q');
  t.equal(quiet.status, 0, quiet.stderr);
  const rendered = compose('config');
  t.equal(rendered.status, 0, rendered.stderr);
  const blocks = serviceBlocks(rendered.stdout);
  t.same([...blocks.keys()].sort(), ['api', 'migrate', 'postgres', 'scheduler-engine', 'worker']);
  for (const [name, block] of blocks) {
    if (name === 'migrate') {
      t.match(block, /healthcheck:\n\s+test:\n\s+- NONE\n/, 'migrate is a one-off: no healthcheck');
      continue;
    }
    t.match(block, /healthcheck:\n(\s+\S.*\n)*?\s+test:/, `${name} has a healthcheck`);
  }
  t.match(blocks.get('worker'), /DATA_ROOT: \/var\/lib\/wombat\/data/);
  t.match(blocks.get('worker'), /target: \/var\/lib\/wombat\n|data:\/var\/lib\/wombat/, 'the worker mounts its volume at /var/lib/wombat');
  // A new named volume takes the owner of the image's directory at its mount point.
  const dockerfile = readFileSync(path.join(repoRoot, 'deploy/Dockerfile'), 'utf8');
  t.match(dockerfile, /chown -R node:node \/var\/lib\/wombat[^]*\nUSER node\n/, 'the image gives /var/lib/wombat to user node before switching to it');
  // The services run their builds, which the image's build stage makes and the final image copies.
  t.match(dockerfile, /^FROM \S+ AS build\n[^]*^RUN node deploy\/build\.ts$/m, 'a build stage bundles the services');
  for (const service of ['api', 'scheduler-engine', 'worker']) {
    t.match(blocks.get(service), `services/${service}/dist/main.mjs`, `${service} runs its build`);
    t.match(dockerfile, `COPY --from=build /opt/wombat/services/${service}/dist services/${service}/dist`, `the image has ${service}'s build`);
  }
});

function healthcheck(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['deploy/healthcheck.ts', ...args], { cwd: repoRoot, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += String(d)));
    child.stderr.on('data', (d: Buffer) => (out += String(d)));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

t.test('the health command passes only with a live heartbeat row for its host', async (t) => {
  const db = await createTestDatabase(t);
  const env = { DATABASE_URL: db.url };
  // Live within 3 intervals: long intervals keep the live rows live however slow this machine is.
  // wombat.workers as the run-state contract defines it, until its migration lands here.
  await db.sql`create table if not exists wombat.workers (
    id uuid primary key, host text not null, pid int not null, version text not null, queues text[] not null,
    concurrency int not null, started_at timestamptz not null default now(), last_beat_at timestamptz not null default now(),
    heartbeat_interval_ms int not null, runs_in_hand int not null default 0, rss_bytes bigint not null default 0, stopped_at timestamptz)`;
  await db.sql`insert into wombat.engines (id, host, pid, version, heartbeat_interval_ms, enabled, last_beat_at)
    values (gen_random_uuid(), 'live-host', 1, 'test', 600000, true, now()),
           (gen_random_uuid(), 'stale-host', 1, 'test', 5000, true, now() - interval '1 hour'),
           (gen_random_uuid(), 'stopped-host', 1, 'test', 600000, true, now())`;
  await db.sql`update wombat.engines set stopped_at = now() where host = 'stopped-host'`;
  await db.sql`insert into wombat.workers (id, host, pid, version, queues, concurrency, heartbeat_interval_ms, last_beat_at)
    values (gen_random_uuid(), 'live-host', 1, 'test', '{canary}', 2, 600000, now()),
           (gen_random_uuid(), 'stale-host', 1, 'test', '{canary}', 2, 2000, now() - interval '1 hour')`;

  // Each check is a process of its own that only reads: they run side by side.
  const kinds = ['scheduler-engine', 'worker'];
  const deadHosts = ['stale-host', 'stopped-host', 'other-host'];
  const [checks, noDb] = await Promise.all([
    Promise.all(kinds.map((kind) => Promise.all(['live-host', ...deadHosts].map((host) => healthcheck([kind, host], env))))),
    healthcheck(['worker'], {}),
  ]);
  for (const [i, kind] of kinds.entries()) {
    const [live, ...dead] = checks[i]!;
    t.equal(live!.code, 0, `${kind} live: ${live!.out}`);
    t.match(live!.out, /beat \d+ ms ago/);
    for (const [j, host] of deadHosts.entries()) {
      t.equal(dead[j]!.code, 1, `${kind} ${host} is unhealthy`);
      t.match(dead[j]!.out, new RegExp(`^${kind}: no live heartbeat for host ${host}`));
    }
  }
  t.equal(noDb.code, 1);
  t.match(noDb.out, /DATABASE_URL/);
});

t.test('the api health command follows GET /health', async (t) => {
  let status = 200;
  const server = createServer((req, res) => {
    res.statusCode = req.url === '/health' ? status : 404;
    res.end('{}');
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const ok = await healthcheck(['api'], { API_PORT: String(port) });
  t.equal(ok.code, 0, ok.out);
  status = 503;
  const failing = await healthcheck(['api'], { API_PORT: String(port) });
  t.equal(failing.code, 1);
  t.match(failing.out, /answered 503/);
  server.close();
  const gone = await healthcheck(['api'], { API_PORT: String(port) });
  t.equal(gone.code, 1);
  t.match(gone.out, /no answer on port/);
});
