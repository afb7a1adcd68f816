import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, repoRoot } from '@wombat/core/platform';
import { createEmptyTestDatabase } from '@wombat/core/testing';
import t from 'tap';

/**
 * The README's "start it alone" commands (the process table), run with sh from the
 * checkout, `DATABASE_URL=...` standing for the test database's URL in the environment:
 * each service starts, and stops cleanly when its process group gets SIGTERM (as from a
 * service manager; Ctrl-C sends SIGINT to the group). npm itself ends by the signal.
 */
t.setTimeout(300_000);

const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
const commands = [...readme.matchAll(/\| `(DATABASE_URL=\.\.\. npm run start -w services\/[a-z-]+)` \|/g)].map((m) => m[1]!);

/** What each service logs once it works. */
const ready: Record<string, string> = {
  'services/scheduler-engine': '"msg":"engine started"',
  'services/worker': '"msg":"worker started"',
  'services/api': '"msg":"api listening"',
};

const migrate = /`(DATABASE_URL=\.\.\. npm run migrate)`/.exec(readme)?.[1];

t.test('every "start it alone" command starts its service, after the README\'s migrate line, and stops cleanly on SIGTERM', async (t) => {
  t.same(commands.map((c) => c.slice(c.indexOf('services/'))).sort(), Object.keys(ready).sort(), 'one command per service');
  // A new, empty database: the services start only because the migrate line ran first.
  const db = await createEmptyTestDatabase(t, 'wombat_alone');
  t.ok(migrate, 'the README says to migrate first');
  const migrated = spawnSync('sh', ['-c', migrate!.replace('DATABASE_URL=... ', '')], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: db.url, LOG_FORMAT: 'json' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  t.equal(migrated.status, 0, migrated.stderr + migrated.stdout);
  for (const command of commands) {
    const service = command.slice(command.indexOf('services/'));
    const line = command.replace('DATABASE_URL=... ', '');
    const child = spawn('sh', ['-c', `exec ${line}`], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: db.url, LOG_FORMAT: 'json', API_PORT: String(await freePort()), API_ADMIN_TOKEN: 'start-alone-admin-token-0123456789' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    t.teardown(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // stopped
      }
    });
    for (let i = 0; child.exitCode === null && !out.includes(ready[service]!) && i < 1200; i++) await sleep(50);
    t.ok(out.includes(ready[service]!), `${command}: the service works`, { output: out.slice(-2000) });
    process.kill(-child.pid!, 'SIGTERM');
    await exited; // npm itself ends by the signal; the service under it stops on its own terms
    for (let i = 0; i < 800 && groupAlive(child.pid!); i++) await sleep(50);
    t.notOk(groupAlive(child.pid!), `${command}: nothing of it is left running`);
    t.match(out, /"clean":true,"msg":"stopped"/, 'the service stopped cleanly', { output: out.slice(-2000) });
  }
});

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
