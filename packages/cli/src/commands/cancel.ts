import { ACTIVE_RUN_STATES, cancelRun, cancelRuns, cancelRunsInput } from '@wombat/core/runs';
import type { Command } from 'commander';
import { CliError, EXIT, notFoundError, usage, type Act } from '../context.ts';
import { checkRunId } from '../follow.ts';
import { json } from '../output.ts';

/** `wombat cancel <run-id>`: one run, as POST /api/runs/{id}/cancel; `wombat cancel --job canary`: empties a queue in one step, as POST /api/runs/cancel does. */
export function registerCancel(program: Command, act: Act): void {
  program
    .command('cancel [run-id]')
    .description('cancel one run by id (a backfill: with every child not finished yet), or every queued run of a job type at once (--job; its pg-boss jobs with it, in one transaction) and print how many')
    .option('--job <job>', 'the job type (or its name in the older setup)')
    .option('--state <states>', `runs in these states, comma-separated: ${ACTIVE_RUN_STATES.join(', ')}`, 'queued')
    .option('--older-than <age>', 'only runs created longer ago than this: 90s, 30m, 1h, 2d, 1w')
    .action(
      act(async (ctx, runId: string | undefined, opts: { job?: string; state: string; olderThan?: string }) => {
        if (runId !== undefined) {
          if (opts.job !== undefined) throw usage('give a run id or --job, not both');
          const id = checkRunId(runId);
          const { db } = await ctx.database();
          const outcome = await cancelRun(db, await ctx.boss(), id);
          if (!outcome) throw notFoundError(`no run with id ${id}`);
          if (!outcome.ok) throw new CliError(EXIT.failed, 'run_finished', `run ${id} already ended as ${outcome.state}`);
          ctx.out(ctx.opts.json ? json({ run_id: id, state: 'cancelled', previous_state: outcome.previous }) : `run ${id} cancelled (was ${outcome.previous})`);
          return EXIT.ok;
        }
        // Checked before the database is opened: a typo costs no connection.
        const input = cancelRunsInput({ job: opts.job, states: opts.state.split(',').map((s) => s.trim()).filter(Boolean), olderThan: opts.olderThan });
        const { db } = await ctx.database();
        const { cancelled } = await cancelRuns(db, await ctx.boss(), input);
        if (ctx.opts.json) ctx.out(json({ cancelled, job: input.job, states: input.states, older_than: opts.olderThan ?? null }));
        else ctx.out(`${cancelled} run(s) of ${input.job} cancelled (${input.states.join(', ')}${opts.olderThan ? `, older than ${opts.olderThan}` : ''})`);
        return EXIT.ok;
      }),
    );
}
