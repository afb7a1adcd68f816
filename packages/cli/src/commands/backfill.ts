import { backfillSchedule, BACKFILL_CONCURRENCY_DEFAULT, BACKFILL_MAX_DEFAULT, resumeBackfill } from '@wombat/core/runs';
import type { Command } from 'commander';
import { EXIT, usage, type Act } from '../context.ts';
import { checkRunId, followRun, reportOutcome } from '../follow.ts';
import { json, table } from '../output.ts';
import { resolveSchedule } from './schedule-input.ts';

function whole(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw usage(`${flag} must be a whole number, not "${v}"`);
  return n;
}

interface BackfillFlags {
  from: string;
  to: string;
  dryRun?: boolean;
  max?: string;
  concurrency?: string;
  rerun?: boolean;
  pauseOnFailure?: boolean;
  wait?: boolean;
}

/** `wombat backfill <schedule> --from --to`: a schedule's past occurrences as one parent run with a child each. */
export function registerBackfill(program: Command, act: Act): void {
  program
    .command('backfill <schedule>')
    .description('run a schedule\'s past occurrences in [--from, --to) as one backfill run with a child run per occurrence; prints the backfill\'s run id')
    .requiredOption('--from <time>', 'start of the range (inclusive): an ISO time, or a date (midnight in the schedule\'s time zone)')
    .requiredOption('--to <time>', 'end of the range (exclusive), not later than now: an ISO time or a date')
    .option('--dry-run', 'print every occurrence with its params and whether it runs or is skipped; record and publish nothing')
    .option('--max <n>', `refuse a range with more occurrences than this (default ${BACKFILL_MAX_DEFAULT})`)
    .option('--concurrency <n>', `child runs queued, running or retrying at once (default ${BACKFILL_CONCURRENCY_DEFAULT})`)
    .option('--rerun', 'run occurrences that completed already too (skipped by default)')
    .option('--pause-on-failure', 'after a child fails, release no more children: the backfill is held until `wombat backfill-resume <id>` or `wombat cancel <id>`')
    .option('--wait', 'follow the backfill until every child has finished; exit 0 when all completed, 1 otherwise')
    .addHelpText('after', `
Each child run gets the schedule's params plus "period": {from, to}, from the occurrence before it
to it, so a collection job collects what it would have collected at that instant. An occurrence
that completed already (any run of the schedule at that instant) is skipped unless --rerun.
A schedule with prerequisites (after) is backfilled with them: their occurrences in the range are
planned too (skipped the same way), and each child runs only once its prerequisites' runs for its
period have completed; one whose prerequisite failed ends skipped (dependency_failed).
Examples:
  wombat backfill daily-candles --from 2026-11-01 --to 2026-11-08 --dry-run
  wombat backfill daily-candles --from 2026-11-01 --to 2026-11-08 --concurrency 2 --pause-on-failure`)
    .action(
      act(async (ctx, ref: string, opts: BackfillFlags) => {
        const max = whole('--max', opts.max);
        const concurrency = whole('--concurrency', opts.concurrency);
        const { db } = await ctx.database();
        const s = await resolveSchedule(db, ref);
        const answer = await backfillSchedule(db, await ctx.boss(), s, {
          from: opts.from,
          to: opts.to,
          max,
          concurrency,
          rerun: opts.rerun,
          pauseOnFailure: opts.pauseOnFailure,
          dryRun: opts.dryRun,
        });
        const run = answer.plan.filter((p) => p.action === 'run').length;
        const summary = `${answer.plan.length} occurrence(s): ${run} to run, ${answer.plan.length - run} skipped`;
        if (answer.runId && opts.wait) {
          // Followed: the run's outcome is what stdout gets (the api's shape with --json).
          ctx.err(`backfill ${answer.runId}: ${summary}`);
          for (const n of answer.notes) ctx.err(`note: ${n}`);
          return reportOutcome(ctx, await followRun(ctx, answer.runId));
        }
        if (ctx.opts.json) {
          ctx.out(json({ schedule_id: s.id, dry_run: !answer.runId, run_id: answer.runId ?? null, run, skip: answer.plan.length - run, notes: answer.notes, occurrences: answer.plan }));
        } else if (!answer.runId) {
          const rows = answer.plan.map((p) => [p.schedule, p.scheduled_for, p.existing, p.action, JSON.stringify(p.params)]);
          ctx.out(table(['SCHEDULE', 'SCHEDULED FOR', 'EXISTING', 'ACTION', 'PARAMS'], rows));
          ctx.out(`${summary}; dry run, nothing published`);
          for (const n of answer.notes) ctx.out(`note: ${n}`);
        } else {
          ctx.out(answer.runId);
          for (const n of answer.notes) ctx.err(`note: ${n}`);
        }
        return EXIT.ok;
      }),
    );

  program
    .command('backfill-resume <run-id>')
    .description('resume a backfill paused after a failure (--pause-on-failure): it releases its remaining children again')
    .action(
      act(async (ctx, id: string) => {
        const runId = checkRunId(id);
        const { db } = await ctx.database();
        const outcome = await resumeBackfill(db, await ctx.boss(), runId);
        ctx.out(ctx.opts.json ? json({ run_id: runId, state: outcome.state, released: outcome.released.length }) : `backfill ${runId} ${outcome.state}: ${outcome.released.length} run(s) released`);
        return EXIT.ok;
      }),
    );
}
