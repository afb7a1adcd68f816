import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startFakeExchange } from '@wombat/collectors/testing';
import { repoRoot } from '@wombat/core/platform';
import { createTestDatabase } from '@wombat/core/testing';
import { startWorker, tempDir } from './helpers.ts';

/**
 * The README's `wombat` lines, taken from the README and run with sh as an operator
 * types them in a checkout after `npm ci` (`npx wombat`: node_modules/.bin is not on
 * the PATH), against a real database, the engine
 * the README's `wombat engine` starts and a worker process, with the exchanges faked.
 * A line naming alternatives (`dlq list|requeue|purge`) is checked against the command's
 * --help and runs `list` for real; `<run id>` is the id the trigger line printed.
 */
t.setTimeout(600_000);
const tdb = await createTestDatabase(t);
const fake = await startFakeExchange();
t.teardown(() => fake.close());
// The markets of the built-in daily-candles schedule, each of which --wait now waits for.
fake.upbit.markets.push({ symbol: 'KRW-XRP', koreanName: '리플', englishName: 'XRP', listedAt: new Date('2018-01-01T00:00:00Z'), gapRatio: 0, basePrice: 800, tick: 1 });
const dataRoot = await tempDir(t);
const env = {
  PATH: (process.env.PATH ?? '').split(':').filter((p) => !p.includes('node_modules')).join(':'),
  LOG_FORMAT: 'json',
  DATABASE_URL: tdb.url,
  TZ: 'UTC',
  DATA_ROOT: dataRoot,
  UPBIT_BASE_URL: fake.url,
};

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

// Compiled code shared by the short-lived `wombat` processes of the lines (Node writes it as
// each exits): the test run's (deploy/with-postgres.ts), else one of this file's own.
const compileCache = process.env.NODE_COMPILE_CACHE ?? (await tempDir(t));

function sh(line: string, shell = 'sh'): Promise<Ran> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(shell, ['-c', line], { cwd: repoRoot, env: { ...env, NODE_COMPILE_CACHE: compileCache }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => {
      t.comment(`${line}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The sh block after "## The `wombat` command", comments dropped. */
function readmeLines(): string[] {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const from = readme.indexOf('## The `wombat` command');
  const block = /```sh\n([^]*?)```/.exec(readme.slice(from))?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, ''))
    .filter((l) => l.trim() !== '');
}

t.test('every wombat line of the README runs as written', async (t) => {
  const lines = readmeLines();
  const expected = ['status', 'schedules', 'trigger', 'run', 'run', 'runs', 'task', 'dlq', 'workers', 'engine', 'completion'];
  t.same(
    lines.map((l) => /\bwombat (\S+)/.exec(l)?.[1]),
    expected,
    'the README lines this test knows, in order',
  );
  const line = (command: string) => lines.find((l) => new RegExp(`\\bwombat ${command}\\b`).test(l))!;

  // wombat engine: the scheduler-engine in the foreground, stopped by SIGTERM.
  // In a process group of its own, as a terminal's foreground job: Ctrl-C reaches npx and the engine alike.
  const engine = spawn('sh', ['-c', `exec ${line('engine')}`], { cwd: repoRoot, env: { ...env, NODE_COMPILE_CACHE: compileCache }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let engineOut = '';
  engine.stdout.setEncoding('utf8').on('data', (s: string) => (engineOut += s));
  engine.stderr.setEncoding('utf8').on('data', (s: string) => (engineOut += s));
  const engineExit = new Promise<number | null>((resolve) => engine.on('exit', resolve));
  t.teardown(() => {
    try {
      process.kill(-engine.pid!, 'SIGKILL');
    } catch {
      // the group has ended
    }
  });
  for (let i = 0; !engineOut.includes('"engine started"'); i++) {
    if (engine.exitCode !== null || i > 1200) throw new Error(`wombat engine did not start: ${engineOut}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  await startWorker(t, { DATABASE_URL: tdb.url, TZ: 'UTC', DATA_ROOT: dataRoot, UPBIT_BASE_URL: fake.url });

  // Alone, the first: Node writes its compile cache as a process exits, and the others use it.
  const status = await sh(line('status'));
  t.match(status.stdout, /^engines \(1 alive\)$/m, `${line('status')}: the engine`);
  t.match(status.stdout, /^workers \(1 alive\)$/m, 'and the worker');
  // Healthy unless an alert opened meanwhile (one worker per queue raises workers_low).
  t.equal(status.code, /^healthy\n/.test(status.stdout) ? 0 : 1, 'exit 0 when healthy, 1 when not', { stdout: status.stdout, stderr: status.stderr });

  // The lines that only read run side by side: each is a Node start of its own.
  const synopses = [line('schedules'), line('dlq')].map((synopsis) => /^npx wombat (\S+) (\S+)$/.exec(synopsis)!);
  const [helps, completion] = await Promise.all([
    Promise.all(synopses.map(([, command]) => Promise.all([sh(`npx wombat ${command} --help`), sh(`npx wombat ${command} list`)]))),
    sh(`${line('completion')} && complete -p wombat`, 'bash'),
  ]);
  for (const [[, command, alternatives], [help, listed]] of synopses.map((s, i) => [s, helps[i]!] as const)) {
    t.equal(help.code, 0, `wombat ${command} --help`, { stderr: help.stderr });
    const commands = help.stdout.slice(help.stdout.indexOf('\nCommands:'));
    for (const sub of alternatives!.split('|')) t.match(commands, new RegExp(`^  ${sub}\\b`, 'm'), `wombat ${command} ${sub} is a command`);
    t.equal(listed.code, 0, `wombat ${command} list`, { stderr: listed.stderr });
  }

  const trigger = await sh(line('trigger'));
  t.equal(trigger.code, 0, line('trigger'), { stderr: trigger.stderr, stdout: trigger.stdout });
  t.match(trigger.stdout, /^children:\s+6: 6 completed$/m, 'it waited for the six series of daily-candles');
  const runId = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(trigger.stdout)?.[0];
  t.ok(runId, 'the trigger prints the run id');
  const follow = await sh(line('task').replace('<run id>', runId ?? ''));
  t.equal(follow.code, 0, `${line('task')}: the run completed`, { stderr: follow.stderr });
  t.match(follow.stdout, /completed/);

  for (const run of lines.filter((l) => /^npx wombat run /.test(l))) {
    const ran = await sh(run);
    t.equal(ran.code, 0, run, { stderr: ran.stderr, stdout: ran.stdout });
  }
  const [runs, workers] = await Promise.all([sh(line('runs')), sh(line('workers'))]);
  t.equal(runs.code, 0, line('runs'), { stderr: runs.stderr });
  t.equal(workers.code, 0, line('workers'), { stderr: workers.stderr });
  t.match(workers.stdout, /fetch-candles|canary|\d/, 'the worker is listed');
  t.equal(completion.code, 0, line('completion'), { stderr: completion.stderr });
  t.match(completion.stdout, /complete -F _wombat wombat/);

  // npx forwards no SIGTERM: the foreground engine is stopped as an operator does, with Ctrl-C.
  // (npx itself then ends as interrupted, 130, as npm does after Ctrl-C.)
  process.kill(-engine.pid!, 'SIGINT');
  await engineExit;
  t.match(engineOut, /"clean":true,"msg":"stopped"/, 'wombat engine stops cleanly on Ctrl-C', { output: engineOut.slice(-2000) });
  t.throws(() => process.kill(-engine.pid!, 0), { code: 'ESRCH' }, 'nothing of it left running');
});
