import { runView } from '@wombat/api';
import { ValidationError } from '@wombat/core/platform';
import { aliasList, checkJobParams, JOB_TYPES, resolveJobName } from '@wombat/core/jobs';
import { getSchedule, getScheduleByName } from '@wombat/core/schedules';
import { publishRun, triggerSchedule } from '@wombat/core/runs';
import type { Command } from 'commander';
import { EXIT, notFoundError, type Act } from '../context.ts';
import { checkRunId, followRun, loadRunWithChildren, reportOutcome, runDetails } from '../follow.ts';
import { json } from '../output.ts';
import { parseJsonOption } from './schedule-input.ts';

export function registerTrigger(program: Command, act: Act): void {
  program
    .command('trigger <target>')
    .description('run a schedule (by id or name) or a job type now through the queue; prints the run id')
    .option('--params <json>', 'job parameters as JSON; for a schedule they replace the schedule\'s')
    .option('--force', 'for a schedule with prerequisites (after): release its run waiting for them now, instead of starting a second one; without a waiting run, run it now as usual')
    .option('--job', 'read <target> as a job type (or a name of the older setup) even if a schedule has that name')
    .option('--wait', 'follow the run (a progress bar on a terminal), and a fan-out\'s children (collect-prices) until each has finished; exit 0 when it and every child completed, 1 otherwise')
    .addHelpText('after', `
A schedule runs with trigger "manual", paused or not, whether or not the scheduler is enabled,
and without waiting for its prerequisites (after); --force releases a run already waiting for them.
<target> is a schedule's id or name, or else a job type (${JOB_TYPES.join(', ')}) or a name of the
older setup (${aliasList()}); a name of the older setup runs the built-in schedule of its job
when there is one, as the job type's own name does.
Examples:
  wombat trigger daily-candles --wait
  wombat trigger fetch-candles --params '{"exchange":"upbit","symbol":"KRW-BTC","timeframe":"1D"}'`)
    .action(
      act(async (ctx, target: string, opts: { params?: string; job?: boolean; wait?: boolean; force?: boolean }) => {
        const params = opts.params === undefined ? undefined : parseJsonOption('--params', opts.params, '\'{"exchanges":["upbit"]}\'');
        const { db } = await ctx.database();
        const job = resolveJobName(target);
        // A schedule of that exact name first; a job name in another spelling (price-crawl, PRICE_CRAWL)
        // then finds the schedule named after its job type, as that type's own name would.
        const schedule = opts.job
          ? null
          : /^\d+$/.test(target)
            ? await getSchedule(db, Number(target))
            : ((await getScheduleByName(db, target)) ?? (job !== undefined && job !== target ? await getScheduleByName(db, job) : null));
        let runId: string;
        if (schedule) {
          runId = (await triggerSchedule(db, await ctx.boss(), schedule.id, { ...(params === undefined ? {} : { params }), ...(opts.force ? { force: true } : {}) }))!;
        } else if (job !== undefined) {
          const check = checkJobParams(job, params ?? {});
          if (!check.ok) throw new ValidationError(check.problems);
          runId = await publishRun(db, await ctx.boss(), { job, params: check.value as object, trigger: 'manual' });
        } else {
          throw notFoundError(`"${target}" is neither a schedule (wombat schedules list) nor a job type (${JOB_TYPES.join(', ')}) or a name of the older setup (${aliasList()})`);
        }
        if (!opts.wait) {
          ctx.out(ctx.opts.json ? json({ run_id: runId, status: 'queued', schedule_id: schedule?.id ?? null }) : runId);
          return EXIT.ok;
        }
        if (!ctx.opts.json) ctx.err(`run ${runId} queued`);
        return reportOutcome(ctx, await followRun(ctx, runId));
      }),
    );

  program
    .command('task <id>')
    .description('one run (task) by id: state, progress, result or error, and a fan-out\'s children by state')
    .option('--follow', 'follow it, and a fan-out\'s children, until they finish (a progress bar on a terminal); exit 0 when it and every child completed, 1 otherwise')
    .action(
      act(async (ctx, id: string, opts: { follow?: boolean }) => {
        const runId = checkRunId(id);
        if (opts.follow) return reportOutcome(ctx, await followRun(ctx, runId));
        const { run, children } = await loadRunWithChildren(ctx, runId);
        ctx.out(ctx.opts.json ? json({ ...runView(run), children }) : runDetails(run, children));
        return EXIT.ok;
      }),
    );
}
