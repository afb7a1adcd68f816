import { ACTIVE_RUN_STATES, cancelRuns, cancelRunsInput } from '@wombat/core/runs';
import type { Command } from 'commander';
import { EXIT, type Act } from '../context.ts';
import { json } from '../output.ts';

/** `wombat cancel --job canary`: empties a queue in one step, as POST /api/runs/cancel does. */
export function registerCancel(program: Command, act: Act): void {
  program
    .command('cancel')
    .description('cancel every queued run of a job type at once (its pg-boss jobs with it, in one transaction) and print how many')
    .requiredOption('--job <job>', 'the job type (or its name in the older setup)')
    .option('--state <states>', `runs in these states, comma-separated: ${ACTIVE_RUN_STATES.join(', ')}`, 'queued')
    .option('--older-than <age>', 'only runs created longer ago than this: 90s, 30m, 1h, 2d, 1w')
    .action(
      act(async (ctx, opts: { job: string; state: string; olderThan?: string }) => {
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
