import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from '@wombat/core/platform';

// Each case is one service process that reads its configuration and exits: they run side by side.
t.jobs = 6;

/** `node src/main.ts` in the service's directory, as spawnSync would report it (killed after 30 s). */
function runMain(service: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['src/main.ts'], { cwd: path.join(repoRoot, 'services', service), env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const cases: { service: string; env: Record<string, string>; names: string[] }[] = [
  { service: 'scheduler-engine', env: { SCHEDULER_HOUR: '25', DATABASE_URL: 'mysql://db/x' }, names: ['SCHEDULER_HOUR', 'DATABASE_URL'] },
  { service: 'worker', env: { STORAGE: 's3', DATABASE_URL: 'not a url' }, names: ['STORAGE', 'DATABASE_URL'] },
  { service: 'api', env: { API_PORT: '80000', DATABASE_URL: 'postgres://host-without-db' }, names: ['API_PORT', 'DATABASE_URL'] },
];

for (const c of cases) {
  t.test(`${c.service} exits 1 naming each bad variable`, async (t) => {
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_FORMAT: "json", ...c.env };
    delete env.WOMBAT_TEST_ADMIN_URL;
    const out = await runMain(c.service, env);
    t.equal(out.status, 1, out.stderr + out.stdout);
    const text = out.stderr + out.stdout;
    for (const name of c.names) t.match(text, name, `names ${name}`);
    t.notMatch(text, /mysql:\/\/db|not a url|host-without-db/, 'does not echo the database URL');
  });
}

for (const service of ['scheduler-engine', 'worker', 'api']) {
  t.test(`${service} started on its own without DATABASE_URL exits 1 with one line saying to set it`, async (t) => {
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_FORMAT: 'json' };
    delete env.DATABASE_URL;
    delete env.WOMBAT_TEST_ADMIN_URL;
    const out = await runMain(service, env);
    t.equal(out.status, 1, out.stderr + out.stdout);
    t.equal(out.stdout, '', 'nothing started, nothing logged');
    const lines = out.stderr.trim().split('\n');
    t.equal(lines.length, 1, out.stderr);
    t.match(lines[0], /DATABASE_URL is not set: set it to .*postgres:\/\/.*DATABASE_URL=embedded/);
  });
}
