import type { Collectors, Crawls } from '@wombat/collectors';
import { backupDatabase, backupFields, type BackupResult } from '@wombat/core/backup';
import { ConfigError, databaseFields, loadConfig, serializeError, ValidationError, type Logger } from '@wombat/core/platform';
import { aliasList, checkJobParams, type Exchange, isJobType, JOB_TYPES, type JobParams, type JobType, resolveJobName, unknownJobMessage } from '@wombat/core/jobs';
import { beatCliRun, CLI_RUN_BEAT_MS, recordCliRunEnd, recordCliRunProgress, recordCliRunStart } from '@wombat/core/runs';
import { DAILY_PIPELINE, dependencyOrder } from '@wombat/core/schedules';
import type { JobContext, JobHandler } from '@wombat/worker';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { EXIT, usage, type CliContext, type Act } from '../context.ts';
import { duration, errorMessage, json } from '../output.ts';
import { parseJsonOption } from './schedule-input.ts';

/**
 * The daily pipeline of `wombat run full`: the built-in schedules' dependency graph in
 * order (each step after what it waits for); steps whose job type this version lacks are left out.
 */
export const FULL_PIPELINE = dependencyOrder(DAILY_PIPELINE);

const prerequisitesOf = (job: string): readonly string[] => DAILY_PIPELINE.find((n) => n.name === job)?.after ?? [];

const PROGRESS_WRITE_MS = 1000;

interface Runner {
  collectors: Collectors;
  crawls: Crawls;
  /** Why a crawl step of `run full` is left out (it is not configured), by job. */
  unconfigured: Partial<Record<JobType, string>>;
  /** The worker's job handlers, run here instead of by a worker. */
  handlers: typeof import('@wombat/worker').defaultHandlers;
  collectorsLib: typeof import('@wombat/collectors');
  defaultExchanges: Exchange[];
  /** data-snapshot's settings (SNAPSHOT_DIR); undefined: that job says it is not configured. */
  snapshots: ReturnType<typeof import('@wombat/collectors').snapshotSettings>;
  /** database-backup here, with BACKUP_DIR and the rest of the backup settings. */
  backup?: { run(log: Logger, signal?: AbortSignal): Promise<BackupResult> };
  close(): Promise<void>;
}

async function openRunner(ctx: CliContext): Promise<Runner> {
  // Loaded only for `run`: the other commands start faster without the collectors and the worker.
  const [lib, worker] = await Promise.all([import('@wombat/collectors'), import('@wombat/worker')]);
  const { collectorConfigProblems, collectorFields, collectorsOptionsFromConfig, createCollectors, crawlConfigProblems, crawlFields, createCrawls, snapshotFields, snapshotSettings } = lib;
  const config = loadConfig({ ...databaseFields, ...collectorFields, ...crawlFields, ...backupFields, ...snapshotFields }, ctx.env);
  // The sources file is read and checked by each crawl run, with a message per bad entry.
  const problems = [...collectorConfigProblems(config), ...crawlConfigProblems(config, { sourcesFile: false })];
  if (problems.length > 0) throw new ConfigError(problems);
  const { db, url } = await ctx.database();
  // Parquet file locks are session advisory locks: held on a connection of their own to the session address.
  const collectors = createCollectors(collectorsOptionsFromConfig(config, { log: ctx.log, db, sessionUrl: config.databaseSessionUrl ?? url }));
  const unconfigured: Runner['unconfigured'] = {};
  if (!config.priceCrawlSources) unconfigured['crawl-prices'] = 'PRICE_CRAWL_SOURCES is not set';
  if (!config.redditSubreddits || config.redditSubreddits.length === 0) unconfigured['collect-posts'] = 'REDDIT_SUBREDDITS is not set';
  return {
    collectors,
    crawls: createCrawls(config, { log: ctx.log, db }),
    unconfigured,
    handlers: worker.defaultHandlers,
    collectorsLib: lib,
    defaultExchanges: config.kisAppKey ? ['upbit', 'kis'] : ['upbit'],
    snapshots: snapshotSettings(config),
    ...(config.backupDir
      ? {
          backup: {
            run: (log: Logger, signal?: AbortSignal) =>
              backupDatabase({ url, dir: config.backupDir!, format: config.backupFormat, keepDaily: config.backupKeepDaily, keepWeekly: config.backupKeepWeekly, log, ...(signal ? { signal } : {}) }),
          },
        }
      : {}),
    close: () => collectors.close(),
  };
}

/** collect-prices in this process: the series one after the other, as the manual script does, not fanned out to the queue. */
async function collectPricesHere(c: JobContext<'collect-prices'>, runner: Runner): Promise<unknown> {
  const p: JobParams<'collect-prices'> = c.params;
  const exchanges = p.exchanges ?? runner.defaultExchanges;
  const { tasks, problems } = await runner.collectorsLib.planPriceSeries(
    runner.collectors,
    { exchanges, market: p.market, symbols: p.symbols, timeframes: p.timeframes ?? ['1D'], daysBack: p.daysBack, overwrite: p.overwrite },
    c.signal,
  );
  if (problems.length > 0) throw new ValidationError(problems);
  let done = 0;
  const report = await runner.collectorsLib.collectPriceSeries(runner.collectors, tasks, {
    signal: c.signal,
    onProgress: (label, fraction, message) => c.progress((done + fraction) / Math.max(1, tasks.length), `${label} ${message ?? ''}`.trim()),
    onDone: () => {
      done++;
      c.progress(done / Math.max(1, tasks.length));
    },
  });
  if (report.failed > 0) {
    throw Object.assign(new Error(`${report.failed} of ${report.series} series failed: ${report.failures.slice(0, 3).map((f) => `${f.series}: ${f.error.message}`).join('; ')}`), { code: 'series_failed', details: report });
  }
  return { exchanges, series: report.series, fetched: report.fetched, written: report.written };
}

/**
 * Runs one job in this process, recorded in the run history with trigger 'cli'.
 * Resolves with the exit code: 0 completed, 1 failed, 130 interrupted.
 */
async function runHere(ctx: CliContext, runner: Runner, job: JobType, params: unknown): Promise<{ code: number; id: string; state: string; result?: unknown; error?: unknown; ms: number }> {
  const check = checkJobParams(job, params ?? {});
  if (!check.ok) throw new ValidationError(check.problems);
  const { db } = await ctx.database();
  const id = await recordCliRunStart(db, { job, params: check.value as object });
  const started = performance.now();
  // The run's row says this process is alive; silent, the engines' reconciler ends it as lost.
  const beat = setInterval(() => void beatCliRun(db, id).catch((err: unknown) => ctx.log.warn({ err }, 'run beat not recorded')), CLI_RUN_BEAT_MS);
  const bar = ctx.errIsTty && !ctx.opts.json
    ? new cliProgress.SingleBar({ format: `${job} {bar} {percentage}% | {message}`, stream: ctx.errStream as NodeJS.WriteStream, hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  bar?.start(100, 0, { message: '' });
  if (!bar && !ctx.opts.json) ctx.err(`${job}: run ${id} started`);
  let lastWrite = 0;
  let writing: Promise<void> = Promise.resolve();
  const progress = (fraction: number, message?: string) => {
    bar?.update(Math.round(fraction * 100), { message: message ?? '' });
    if (performance.now() - lastWrite < PROGRESS_WRITE_MS) return;
    lastWrite = performance.now();
    writing = writing.then(() => recordCliRunProgress(db, id, fraction, message ?? null)).catch((err) => ctx.log.warn({ err }, 'progress not recorded'));
  };
  const jobCtx = { runId: id, job, params: check.value, attempt: 1, signal: ctx.signal, progress, log: ctx.log.child({ job, runId: id }) } as JobContext<JobType>;
  try {
    const result =
      job === 'collect-prices'
        ? await collectPricesHere(jobCtx as JobContext<'collect-prices'>, runner)
        : await (runner.handlers[job] as JobHandler<JobType>)(jobCtx, {
            db,
            boss: await ctx.boss(),
            collectors: runner.collectors,
            crawls: runner.crawls,
            ...(runner.backup ? { backup: runner.backup } : {}),
            ...(runner.snapshots ? { snapshots: runner.snapshots } : {}),
            defaultExchanges: runner.defaultExchanges,
            log: ctx.log,
          });
    bar?.update(100);
    await writing;
    await recordCliRunEnd(db, id, { state: 'completed', result: result ?? {} });
    return { code: EXIT.ok, id, state: 'completed', result: result ?? {}, ms: performance.now() - started };
  } catch (err) {
    await writing;
    ctx.log.error({ err, job, runId: id }, 'job failed');
    const interrupted = ctx.signal.aborted;
    const error = interrupted ? { name: 'AppError', code: 'interrupted', message: 'interrupted by the operator (Ctrl-C)' } : serializeError(err);
    await recordCliRunEnd(db, id, { state: interrupted ? 'cancelled' : 'failed', error });
    return { code: interrupted ? EXIT.interrupted : EXIT.failed, id, state: interrupted ? 'cancelled' : 'failed', error, ms: performance.now() - started };
  } finally {
    clearInterval(beat);
    bar?.stop();
  }
}

function jobOf(name: string): JobType {
  const job = resolveJobName(name);
  if (!job) throw usage(`${unknownJobMessage(name)}, or full`);
  return job;
}

export function registerRun(program: Command, act: Act): void {
  program
    .command('run <job>')
    .description('run a job in this process, without the queue, recorded in the run history with trigger "cli"; `run full` runs the daily pipeline')
    .option('--params <json>', 'job parameters as JSON, e.g. \'{"exchanges":["upbit"]}\'')
    .addHelpText('after', `
<job> is a job type (${JOB_TYPES.join(', ')}), a name of the older setup (${aliasList()})
or "full": ${FULL_PIPELINE.join(', then ')} (the steps this version has), each recorded as its own run;
a failed step does not stop the next ones, except those that wait for it (collect-prices for collect-symbols),
which are skipped as the engine skips a waiting run (dependency_failed).
collect-prices collects its series here, one after the other, instead of fanning out to workers.
Needs the collector environment (DATA_ROOT, UPBIT_BASE_URL, KIS_*). Ctrl-C stops the job; its run ends cancelled.
Exit: 0 when every run completed, 1 when one failed, 130 when interrupted.`)
    .action(
      act(async (ctx, name: string, opts: { params?: string }) => {
        const params = opts.params === undefined ? undefined : parseJsonOption('--params', opts.params, '\'{"exchanges":["upbit"]}\'');
        if (name === 'full' && params !== undefined) throw usage('run full takes no --params: each step runs with its defaults');
        const steps = name === 'full' ? FULL_PIPELINE.filter(isJobType) : [jobOf(name)];
        // Parameters are checked before anything runs or opens a connection to an exchange.
        if (name !== 'full') {
          const check = checkJobParams(steps[0]!, params ?? {});
          if (!check.ok) throw new ValidationError(check.problems);
        }
        const runner = await openRunner(ctx);
        const outcomes: { job: string; run_id: string | null; state: string; [k: string]: unknown }[] = [];
        try {
          for (const job of steps) {
            const off = name === 'full' ? runner.unconfigured[job as JobType] : undefined;
            if (off !== undefined) {
              // As the engine leaves the built-in schedule out: an unconfigured crawl is no failure.
              outcomes.push({ job, run_id: null, state: 'skipped', reason: off });
              if (!ctx.opts.json) ctx.out(`${job}: skipped (${off})`);
              continue;
            }
            // As the engine's waiting run: a step whose prerequisite did not complete here is skipped.
            const unmet = name === 'full' ? prerequisitesOf(job).filter((p) => outcomes.find((o) => o.job === p)?.state !== 'completed') : [];
            if (unmet.length > 0) {
              const reason = `dependency_failed: ${job} waits for ${unmet.join(', ')}, which did not complete`;
              outcomes.push({ job, run_id: null, state: 'skipped', reason });
              if (!ctx.opts.json) ctx.out(`${job}: skipped (${reason})`);
              continue;
            }
            const o = await runHere(ctx, runner, job as JobType, params);
            outcomes.push({ job, run_id: o.id, state: o.state, duration_ms: Math.round(o.ms), ...(o.result !== undefined ? { result: o.result } : {}), ...(o.error !== undefined ? { error: o.error } : {}) });
            if (!ctx.opts.json) ctx.out(`${job}: ${o.state} in ${duration(o.ms)} (run ${o.id})${o.error ? `: ${errorMessage(o.error)}` : ''}`);
            if (o.code === EXIT.interrupted) break;
          }
        } finally {
          await runner.close();
        }
        if (ctx.opts.json) ctx.out(json(name === 'full' ? { runs: outcomes } : outcomes[0]));
        if (outcomes.some((o) => o.state === 'cancelled')) return EXIT.interrupted;
        return outcomes.every((o) => o.state === 'completed' || o.state === 'skipped') ? EXIT.ok : EXIT.failed;
      }),
    );
}
