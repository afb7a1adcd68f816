import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { databaseFields, processFields, repoRoot } from '@wombat/core/platform';

const unitsDir = path.join(repoRoot, 'systemd');
const serviceUnits = readdirSync(unitsDir).filter((f) => f.endsWith('.service') && f !== 'wombat-migrate.service');

function directive(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

t.test('has a unit per service and a worker template', async (t) => {
  t.same(serviceUnits.sort(), ['wombat-api.service', 'wombat-scheduler-engine.service', 'wombat-worker.service', 'wombat-worker@.service']);
});

for (const unit of serviceUnits) {
  t.test(`${unit} restarts on failure, outlives the shutdown deadline and is hardened`, async (t) => {
    const text = readFileSync(path.join(unitsDir, unit), 'utf8');
    t.same(directive(text, 'Restart'), ['on-failure']);
    t.same(directive(text, 'StartLimitIntervalSec'), ['0'], 'systemd never stops restarting it (a long database outage)');
    const stopSec = Number(directive(text, 'TimeoutStopSec')[0]);
    t.ok(stopSec * 1000 > Number(processFields.shutdownTimeoutMs.default), 'TimeoutStopSec exceeds SHUTDOWN_TIMEOUT_MS');
    t.same(directive(text, 'EnvironmentFile'), ['/etc/wombat/wombat.env']);
    t.same(directive(text, 'StandardOutput'), ['journal']);
    t.same(directive(text, 'NoNewPrivileges'), ['yes']);
    t.same(directive(text, 'ProtectSystem'), ['strict']);
    t.same(directive(text, 'KillMode'), ['mixed'], 'SIGTERM to the service, SIGKILL only after the deadline');
    t.same(directive(text, 'SyslogLevelPrefix'), ['yes'], 'journald reads the <N> priority prefix');
    t.same(directive(text, 'Type'), ['notify'], 'ready when it works, watched by systemd');
    t.ok(Number(directive(text, 'WatchdogSec')[0]) > 0, 'a stalled event loop is restarted');
    const exec = directive(text, 'ExecStart')[0] ?? '';
    const m = /^\/opt\/wombat\/node_modules\/\.bin\/node (?:--[a-z-]+=\S+ )*services\/([a-z-]+)\/dist\/main\.mjs$/.exec(exec);
    t.ok(m && existsSync(path.join(repoRoot, 'services', m[1]!, 'src/main.ts')), `ExecStart runs a service's build with the bundled Node: ${exec}`);
    t.ok(m && existsSync(path.join(repoRoot, 'services', m[1]!, 'dist/main.mjs')), 'npm ci built it');
  });
}

const analyze = spawnSync('systemd-analyze', ['--version']).status === 0 || process.env.WOMBAT_CI === '1';
t.test('systemd-analyze verify accepts every unit', { skip: analyze ? false : 'systemd-analyze is not installed here (.ci/run installs it)' }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // As if installed: /opt/wombat is this checkout, /etc/wombat a directory with the env file.
  writeFileSync(path.join(dir, 'wombat.env'), '');
  for (const f of readdirSync(unitsDir)) {
    const text = readFileSync(path.join(unitsDir, f), 'utf8').replaceAll('/opt/wombat', repoRoot).replaceAll('/etc/wombat/', `${dir}/`);
    writeFileSync(path.join(dir, f === 'wombat-worker@.service' ? 'wombat-worker@1.service' : f), text);
  }
  const files = readdirSync(dir).filter((f) => f.startsWith('wombat-') || f === 'wombat.target').map((f) => path.join(dir, f));
  const out = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8' });
  t.equal(out.status, 0, out.stderr);
  t.equal(out.stderr.trim(), '', 'no warnings');
});

t.test('.env.example lists every variable a service reads, each with a comment', async (t) => {
  const example = readFileSync(path.join(repoRoot, 'deploy/.env.example'), 'utf8');
  const lines = example.split('\n');
  const fields = [...Object.values(databaseFields), ...Object.values(processFields)];
  for (const name of ['scheduler-engine', 'worker', 'api']) {
    const configPath = path.join(repoRoot, 'services', name, 'src/config.ts');
    if (!existsSync(configPath)) continue;
    const mod = (await import(configPath)) as Record<string, unknown>;
    for (const value of Object.values(mod)) {
      if (value && typeof value === 'object') {
        for (const f of Object.values(value as Record<string, unknown>)) {
          if (f && typeof f === 'object' && 'env' in f && 'parse' in f) fields.push(f as (typeof fields)[number]);
        }
      }
    }
  }
  const names = new Set(fields.map((f) => f.env));
  t.ok(names.size > 8);
  for (const env of names) {
    const i = lines.findIndex((l) => l.startsWith(`${env}=`));
    t.ok(i > 0, `${env} is listed`);
    if (i > 0) t.match(lines[i - 1], /^# \S/, `${env} has a comment`);
  }
});

t.test('docker-compose.yml has postgres, migrate, api, engine and worker', async (t) => {
  const text = readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8');
  for (const s of ['postgres:', 'migrate:', 'api:', 'scheduler-engine:', 'worker:']) t.match(text, new RegExp(`^  ${s}`, 'm'));
});

