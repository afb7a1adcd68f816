import t from 'tap';
import { JOB_ALIASES, JOB_TYPES, resolveJobName } from '@wombat/core/jobs';
import { insertSchedule, validateScheduleInput } from '@wombat/core/schedules';
import { createTestDatabase } from '@wombat/core/testing';
import type { Command } from 'commander';
import { buildProgram } from '../src/index.ts';
import { wombat, wombatProcess } from './helpers.ts';

/**
 * The older setup's job names (`wombat run price-crawl` in its playbooks) work in every command
 * that takes a job name, through core's one table (JOB_ALIASES).
 */
t.setTimeout(300_000);
const tdb = await createTestDatabase(t);
const env = { DATABASE_URL: tdb.url, TZ: 'UTC' };
const runsOf = (job: string) => tdb.sql<{ id: string; job: string; trigger: string; schedule_id: string | null; state: string }[]>`
  select id, job, trigger, schedule_id, state from wombat.runs where job = ${job} order by created_at`;

t.test('the table resolves every spelling of a job name and nothing else', async (t) => {
  for (const job of JOB_TYPES) t.equal(resolveJobName(job), job);
  for (const [alias, job] of Object.entries(JOB_ALIASES)) {
    t.equal(resolveJobName(alias), job);
    t.equal(resolveJobName(alias.replaceAll('-', '_')), job, `${alias} in the older setup's snake case`);
  }
  t.equal(resolveJobName('crawl_prices'), 'crawl-prices');
  for (const not of ['', 'price', 'crawl', 'PRICE_CRAWL', 'Canary', 'toString', '__proto__', 'constructor', 'price-crawls', 'price crawl']) t.equal(resolveJobName(not), undefined, JSON.stringify(not));
});

t.test('every command option or argument that takes a job name is one this file exercises', async (t) => {
  // A new command taking a job name must be added to this list, and to the tests below.
  const covered = ['trigger <target>', 'run <job>', 'runs --job', 'cancel --job', 'dlq list --job', 'dlq requeue --job', 'dlq purge --job', 'schedules create --job', 'schedules edit --job', 'schedules preview --job'];
  const found: string[] = [];
  const walk = (cmd: Command, prefix: string) => {
    for (const sub of cmd.commands) {
      const name = `${prefix}${sub.name()}`;
      for (const arg of sub.registeredArguments) if (/job|target/.test(arg.name())) found.push(`${name} <${arg.name()}>`);
      for (const opt of sub.options) if (opt.long === '--job' && opt.required) found.push(`${name} --job`);
      walk(sub, `${name} `);
    }
  };
  walk(buildProgram({} as never, { code: 0 }), '');
  t.same(found.sort(), [...covered].sort());
});

t.test('wombat trigger price-crawl queues a crawl-prices run, as wombat run price-crawl runs one', async (t) => {
  // The executable itself, as the old playbook's line runs it.
  const queued = await wombatProcess(['trigger', 'price-crawl'], env);
  t.equal(queued.code, 0, queued.stderr);
  const id = queued.stdout.trim();
  t.match((await runsOf('crawl-prices')).find((r) => r.id === id), { job: 'crawl-prices', trigger: 'manual', schedule_id: null, state: 'queued' });

  const snake = await wombat(['trigger', 'price_crawl', '--json'], env);
  t.equal(snake.code, 0, snake.stderr);
  t.match(snake.json, { run_id: String, status: 'queued', schedule_id: null });

  // `run` resolves through the same table: without PRICE_CRAWL_SOURCES the crawl fails, recorded under its job type.
  const ran = await wombat(['run', 'price-crawl', '--json'], env);
  t.equal(ran.code, 1, ran.stderr);
  t.match(ran.json, { job: 'crawl-prices', state: 'failed', error: { code: 'price_crawl_not_configured' } });
  t.match(await runsOf('crawl-prices'), [{ trigger: 'manual' }, { trigger: 'manual' }, { trigger: 'cli', state: 'failed' }]);
});

t.test('an alias triggers the schedule named after its job, as the job type\'s name does', async (t) => {
  // Named as the engine names its built-in crawl schedules: after their job type.
  const def = validateScheduleInput({ name: 'collect-posts', job: 'collect-posts', times: ['10:00'], timezone: 'UTC', status: 'paused' });
  if (!def.ok) throw new Error(def.problems.join('; '));
  const schedule = await insertSchedule(tdb.db, def.value);
  const byAlias = await wombat(['trigger', 'reddit-collection', '--json'], env);
  t.equal(byAlias.code, 0, byAlias.stderr);
  t.equal(byAlias.json.schedule_id, schedule.id);
  const asJob = await wombat(['trigger', 'reddit-collection', '--job', '--json'], env);
  t.equal(asJob.code, 0, asJob.stderr);
  t.equal(asJob.json.schedule_id, null, '--job reads it as a job type');
  t.match(await runsOf('collect-posts'), [{ schedule_id: String(schedule.id) }, { schedule_id: null }]);
});

t.test('unknown job names are refused with the job types and the older names', async (t) => {
  const trigger = await wombat(['trigger', 'price-crawler'], env);
  t.equal(trigger.code, 3, 'not found: neither a schedule nor a job');
  t.match(trigger.stderr, /"price-crawler" is neither a schedule .* nor a job type \(.*crawl-prices.*\) or a name of the older setup \(price-crawl \(crawl-prices\)/);
  const run = await wombat(['run', 'price-crawler'], env);
  t.equal(run.code, 2);
  t.match(run.stderr, /"price-crawler" is not a job type; give one of .*crawl-prices.* \(or a name of the older setup: price-crawl \(crawl-prices\).*\), or full/);
  const schedule = await wombat(['schedules', 'create', '--name', 'typo', '--job', 'price-crawler', '--every', '1h'], env);
  t.equal(schedule.code, 2);
  t.match(schedule.stderr, /job must be one of/);
});

t.test('runs, dlq and schedules take the older names for their --job', async (t) => {
  const created = await wombat(['schedules', 'create', '--name', 'hourly-crawl', '--job', 'price_crawl', '--every', '1h', '--json'], env);
  t.equal(created.code, 0, created.stderr);
  t.equal(created.json.job, 'crawl-prices', 'stored as its job type');
  const edited = await wombat(['schedules', 'edit', 'hourly-crawl', '--job', 'symbols', '--json'], env);
  t.equal(edited.code, 0, edited.stderr);
  t.equal(edited.json.job, 'collect-symbols');
  const preview = await wombat(['schedules', 'preview', '--job', 'price-crawl', '--every', '1h', '--json'], env);
  t.equal(preview.code, 0, preview.stderr);
  t.equal((await wombat(['schedules', 'preview', '--job', 'price-crawler', '--every', '1h'], env)).code, 2, 'checked like create');

  const runs = await wombat(['runs', '--job', 'price-crawl', '--json'], env);
  t.equal(runs.code, 0, runs.stderr);
  t.equal(runs.json.total, 3);
  t.ok(runs.json.runs.every((r: { job: string }) => r.job === 'crawl-prices'));

  const deadLetters = await wombat(['dlq', 'list', '--job', 'price_crawl', '--json'], env);
  t.equal(deadLetters.code, 0, deadLetters.stderr);
  t.equal(deadLetters.json.total, 1, 'the failed run of `run price-crawl`');
  const requeued = await wombat(['dlq', 'requeue', '--job', 'price-crawl', '--json'], env);
  t.equal(requeued.code, 0, requeued.stderr);
  t.equal(requeued.json.count, 1);
  t.equal((await wombat(['dlq', 'list', '--job', 'price-crawl', '--json'], env)).json.total, 0);

  // A dead letter of each job: purge by the older name removes the crawl's only.
  t.equal((await wombat(['run', 'reddit-collection', '--json'], env)).json.state, 'failed');
  t.equal((await wombat(['run', 'price-crawl', '--json'], env)).json.state, 'failed');
  const purged = await wombat(['dlq', 'purge', '--job', 'price-crawl', '--older-than', '0', '--json'], env);
  t.equal(purged.code, 0, purged.stderr);
  t.equal(purged.json.purged, 1);
  t.equal((await wombat(['dlq', 'list', '--json'], env)).json.dead_letters[0].job, 'collect-posts');
});

t.test('cancel takes the older names for its --job', async (t) => {
  const queued = await wombat(['trigger', 'reddit-collection', '--json'], env);
  t.equal(queued.code, 0, queued.stderr);
  const waiting = (await runsOf('collect-posts')).filter((r) => r.state === 'queued').length;
  const cancelled = await wombat(['cancel', '--job', 'reddit_collection', '--json'], env);
  t.equal(cancelled.code, 0, cancelled.stderr);
  t.match(cancelled.json, { cancelled: waiting, job: 'collect-posts' });
  t.equal((await runsOf('collect-posts')).filter((r) => r.state === 'queued').length, 0, 'none left queued');
  t.match((await runsOf('collect-posts')).find((r) => r.id === queued.json.run_id), { state: 'cancelled' });
  t.equal((await wombat(['cancel', '--job', 'reddit-collector'], env)).code, 2, 'an unknown name is refused');
});
