import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from '@wombat/core/platform';
import t from 'tap';
import { readmeBlock } from './helpers.ts';

/**
 * The benchmark commands of deploy/README.md, taken from it and run as written from the
 * checkout, with tiny sizes through their BENCH_* (and OUTAGES_S) variables: each
 * exits 0 and prints its figure lines. The figures themselves are not judged here.
 *
 * The four `npm run bench -w <workspace>` lines and `npm run bench:recovery` run for
 * real, three at a time (each waits much of its time on PostgreSQL, timers and child processes;
 * `bench:recovery` mostly waits out its outage and pauses, beside the other two).
 * `npm run bench` runs the same workspace scripts one after the other through turbo:
 * it runs here with turbo's `--dry=json` added, which shows that it runs exactly the
 * `bench` script of each workspace the README lists, in that workspace's directory,
 * as `npm run bench -w` does.
 */
t.setTimeout(240_000);

const adminUrl = process.env.WOMBAT_TEST_ADMIN_URL;
if (!adminUrl) throw new Error('run under node deploy/with-postgres.ts');

const chromium = existsSync('/usr/bin/chromium');
// Compiled code shared by the many Node processes the benchmarks start.
const compileCache = mkdtempSync(path.join(tmpdir(), 'wombat-bench-cache-'));
t.teardown(() => rmSync(compileCache, { recursive: true, force: true }));
// A user's environment, without the test runner's (tap instruments the Node processes it sees).
const env: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  NODE_COMPILE_CACHE: compileCache,
  // The server the tests use; each benchmark creates and drops databases of its own there.
  DATABASE_URL: adminUrl,
  LOG_LEVEL: 'warn',
  TURBO_TELEMETRY_DISABLED: '1',
  // scheduler-engine: 20 schedules firing, 100 idle, 2 s per scenario
  BENCH_SECONDS: '2',
  BENCH_FIRING: '20',
  BENCH_IDLE: '100',
  // worker: one round of 100 jobs, 3 pickup probes, 3 s of the every-second schedule; Parquet: one round
  BENCH_ROUNDS: '1',
  BENCH_JOBS: '100',
  BENCH_LATENCY_JOBS: '3',
  BENCH_SCHEDULE_SECONDS: '3',
  // api: 20 submissions per level, 1,000 runs, one page load per history
  BENCH_REQUESTS: '20',
  BENCH_RUNS: '1000',
  BENCH_PAGE_LOADS: '1',
  // api at scale: 2,000 runs, 5 samples per route, 2 s of idle CPU per database
  SCALE_RUNS: '2000',
  SCALE_SAMPLES: '5',
  SCALE_IDLE_SECONDS: '2',
  // api: a burst of 2,000 tasks instead of a million
  BENCH_BURST_TASKS: '2000',
  // collectors: a day of minute candles, a month of KIS days, budgets shared with leases of 3, a 2,000-row Parquet file
  BENCH_DAYS_BACK: '1',
  BENCH_KIS_FROM: '2026-05-01',
  BENCH_LEASES: '3',
  BENCH_ROWS: '2000',
  // recovery: one outage of 1 s
  OUTAGES_S: '1',
  // The fail-over half has a test of its own (deploy/test/failover.test.ts).
  FAILOVER: '0',
};

interface Ran {
  code: number | null;
  stdout: string;
  output: string;
  seconds: number;
}

/** Runs one README line with sh in the checkout; a run past the deadline is killed with its children. */
function run(line: string, deadlineMs = 200_000): Promise<Ran> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn('sh', ['-c', line], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => ((stdout += s), (output += s)));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
    const timer = setTimeout(() => {
      output += `\n(killed after ${deadlineMs} ms)`;
      process.kill(-child.pid!, 'SIGKILL');
    }, deadlineMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, output, seconds: (performance.now() - started) / 1000 });
    });
  });
}

const num = String.raw`\d[\d,]*(?:\.\d+)?`;
/** Each workspace's figure lines: every pattern must match a line of its output. */
const figures: Record<string, RegExp[]> = {
  'services/scheduler-engine': [
    new RegExp(`^process RSS before any engine: ${num} MiB$`, 'm'),
    new RegExp(`^20 schedules firing every second: [1-9]\\d* occurrences in 2s \\| publish lag min ${num} ms, p50 ${num} ms, p99 ${num} ms, max ${num} ms \\| process RSS max ${num} MiB`, 'm'),
    new RegExp(`^1 schedule firing every second among 100 idle: [1-9]\\d* occurrences in 2s \\| publish lag min ${num} ms, p50 ${num} ms, p99 ${num} ms`, 'm'),
    new RegExp(`^engine process as its unit runs it \\(--max-semi-space-size=4 MALLOC_ARENA_MAX=2\\), RSS max over 2s, 1 schedule firing every second among 100 idle: built \\(dist/main\\.mjs\\) [1-9]\\d* MiB, sources \\(src/main\\.ts\\) [1-9]\\d* MiB \\| built/sources x${num}$`, 'm'),
  ],
  'services/worker': [
    /^worker drain benchmark: 100 trivial jobs per drain, 1 interleaved rounds/m,
    ...['drain, 1 process', 'drain, 2 processes'].flatMap((title) => [
      new RegExp(`^${title}\\n  wombat +${num} jobs/s \\(${num}-${num}\\) +x graphile-worker ${num}`, 'm'),
      new RegExp(`^${title}\\n(?:  .*\\n){1}  pg-boss +${num} jobs/s .* x graphile-worker ${num}`, 'm'),
      new RegExp(`^${title}\\n(?:  .*\\n){2}  graphile-worker +${num} jobs/s .* x graphile-worker 1\\.00`, 'm'),
    ]),
    ...['wombat', 'pg-boss', 'graphile-worker'].map((s) => new RegExp(`^  ${s} +p50 ${num} ms  p99 ${num} ms`, 'm')),
    new RegExp(`^schedule instant -> handler start, .*, [1-9]\\d* runs in 3s\\): p50 ${num} ms  p99 ${num} ms`, 'm'),
    new RegExp(`^CPU per job, drain 1 process .*\\n  wombat +Node +${num} us +PostgreSQL +${num} us +total ${num} us$`, 'm'),
  ],
  'services/api': [
    /^task submission latency, 20 requests per level/m,
    ...[1, 10, 100].map((c) => new RegExp(`^ +${c} +${num} +${num} +${num} +${num} +(?:${num}|-) +(?:${num}|-)$`, 'm')),
    new RegExp(`^GET /api/overview, empty history +${num} +${num}$`, 'm'),
    new RegExp(`^GET /api/overview, 1k runs +${num} +${num} +${num}x$`, 'm'),
    ...(chromium
      ? [new RegExp(`^page drawn in chromium, empty +${num} +${num}$`, 'm'), new RegExp(`^page drawn in chromium, 1k +${num} +${num} +${num}x$`, 'm')]
      : [/^\(\/usr\/bin\/chromium not installed: page render time not measured\)$/m]),
    /^read paths with no runs, 1k and 2,000 runs finished in the last 24 h/m,
    ...['/api/overview', '/metrics', '/api/runs?limit=50', '/api/scheduler/status', '/api/dead-letters?limit=50'].map(
      (route) => new RegExp(`^${route.replace(/[?]/g, '\\?')}${` +${num}`.repeat(6)} +x${num} +x${num} +x${num} +x${num}$`, 'm'),
    ),
    ...['starting_after', 'offset'].map((how) => new RegExp(`^  /api/runs\\?limit=50&${how}=\\.\\.\\. +p50 +${num} p99 +${num} +x${num} x${num}$`, 'm')),
    new RegExp(`^  empty database +${num} s \\(.*\\)$`, 'm'),
    new RegExp(`^  2k +runs queued \\(pg-boss jobs\\) +${num} s +x${num} \\(.*\\)$`, 'm'),
    new RegExp(`^  client backends alone \\(the services' statements\\): x${num}$`, 'm'),
    /^burst: 2,000 canary tasks, 4 clients x batches of 1000, then 3 workers/m,
    new RegExp(`^  submission  ${num} tasks/s \\(${num} s\\)`, 'm'),
    new RegExp(`^  drain       ${num} jobs/s \\(${num} s\\) with 3 workers`, 'm'),
    ...['api', 'scheduler-engine', 'worker-1', 'worker-2', 'worker-3'].map((s) => new RegExp(`^  ${s} +${num} +${num} +${num} +x${num} +x${num}$`, 'm')),
    /^ {2}runs completed once: 2,000 of 2,000; pg-boss jobs completed: 2,000$/m,
  ],
  'packages/collectors': [
    new RegExp(`^upbit: [1-9]\\d* candles in ${num} s = ${num} candles/s$`, 'm'),
    new RegExp(`^upbit: [1-9]\\d* requests = ${num} req/s; .* utilisation ${num}%$`, 'm'),
    new RegExp(`^kis: [1-9]\\d* candles in ${num} s = ${num} candles/s$`, 'm'),
    new RegExp(`^kis: [1-9]\\d* requests \\(\\+1 token\\) = ${num} req/s; .* utilisation ${num}%$`, 'm'),
    ...[3].flatMap((lease) => [
      new RegExp(`^upbit \\(3 workers \\+ 1 script, lease ${lease}\\): [1-9]\\d* requests in ${num} s = ${num} req/s; limit 10/s: ${num}% of the limit; 429 share ${num}%`, 'm'),
      new RegExp(`^kis \\(2 workers, one app key, lease ${lease}\\): [1-9]\\d* requests in ${num} s = ${num} req/s; limit 18/s: ${num}% of the limit; EGW00201: \\d+`, 'm'),
    ]),
    new RegExp(`^round 1: encode \\(zstd\\): 2000 rows in ${num} s = ${num} rows/s$`, 'm'),
    new RegExp(`^round 1: append of a day after the end .*, 1440 new rows: 3440 rows in ${num} s = ${num} rows/s$`, 'm'),
    new RegExp(`^round 1: merge of a day overlapping the end .*, 720 new rows: 2720 rows in ${num} s = ${num} rows/s$`, 'm'),
    new RegExp(`^append rows/s / plain encode rows/s: median ${num}, min-max ${num}-${num} `, 'm'),
    new RegExp(`^overlapping merge rows/s / plain encode rows/s: median ${num}, `, 'm'),
    new RegExp(`^overwrite merge \\(2000 rows replaced\\): 2000 rows in ${num} s`, 'm'),
  ],
};

const lines = readmeBlock('## Benchmarks', 'deploy/README.md')
  .filter((l) => !l.trimStart().startsWith('#'))
  .map((l) => l.replace(/\s+#.*$/, ''));
const workspaceLines = lines.filter((l) => l.startsWith('npm run bench -w '));
const workspaces = workspaceLines.map((l) => l.slice('npm run bench -w '.length));
const recoveryLine = /measured by `(npm run bench:recovery)`/.exec(readFileSync(path.join(repoRoot, 'deploy/README.md'), 'utf8'))?.[1];

t.test('the README lists npm run bench and one line per workspace', async (t) => {
  t.same(lines, ['npm run bench', ...workspaceLines], 'npm run bench, then only workspace lines');
  t.same([...workspaces].sort(), Object.keys(figures).sort(), 'every workspace with a benchmark, once');
  t.equal(recoveryLine, 'npm run bench:recovery', 'the recovery benchmark is named in the README');
});

t.test('every README benchmark line runs with tiny sizes, exits 0 and prints its figures', async (t) => {
  // The longest first, so that the three lanes end at about the same time.
  const longest = ['services/worker', 'packages/collectors', 'bench:recovery', 'services/api'];
  const rank = (line: string) => longest.findIndex((w) => line.endsWith(w)) >>> 0;
  const queue = [...workspaceLines, recoveryLine!].sort((a, b) => rank(a) - rank(b));
  const runs: { line: string; ran: Ran }[] = [];
  await Promise.all(
    [1, 2, 3].map(async () => {
      for (let line = queue.shift(); line !== undefined; line = queue.shift()) runs.push({ line, ran: await run(line) });
    }),
  );
  for (const { line, ran } of runs) {
    t.comment(`${line}: ${ran.seconds.toFixed(1)} s`);
    t.equal(ran.code, 0, `${line} exits 0`, { output: ran.output.slice(-3000) });
    t.notMatch(ran.stdout, /NaN|Infinity/, `${line}: every figure is a number`);
    const workspace = line.slice('npm run bench -w '.length);
    const expected =
      line === recoveryLine
        ? [
            /^outage s \| api accepts \| engine publishes \| engine heartbeats \| worker fetches$/m,
            new RegExp(`^ +1 \\| +${num} \\| +${num} \\| +${num} \\| +${num}$`, 'm'),
            new RegExp(`^submissions: [1-9]\\d* \\([1-9]\\d* accepted, \\d+ answered 503, 0 unanswered\\); 503 answer time p50 (?:${num}|-) ms`, 'm'),
          ]
        : figures[workspace]!;
    for (const pattern of expected) t.match(ran.stdout, pattern, `${line} prints ${pattern.source.slice(0, 60)}`);
    t.notMatch(ran.output, /a process failed|exited during the run/, `${line}: no process of the benchmark failed`);
  }
});

t.test('npm run bench runs exactly those workspace scripts, one after the other', async (t) => {
  const ran = await run('npm run bench -- --dry=json', 60_000);
  t.equal(ran.code, 0, 'npm run bench (turbo --dry=json) exits 0', { output: ran.output.slice(-3000) });
  const root = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.match(root.scripts.bench, /turbo run bench --concurrency=1$/, 'turbo runs one benchmark at a time');
  const plan = JSON.parse(ran.stdout.slice(ran.stdout.indexOf('\n{') + 1)) as { tasks: { task: string; directory: string; command: string }[] };
  const tasks = plan.tasks.filter((task) => task.command !== '<NONEXISTENT>');
  t.same(tasks.map((task) => task.directory).sort(), [...workspaces].sort(), 'the workspaces of the README lines, no other');
  for (const task of tasks) {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, task.directory, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    t.equal(task.task, 'bench');
    t.equal(task.command, pkg.scripts.bench, `${task.directory}: the script npm run bench -w ${task.directory} runs`);
  }
});
