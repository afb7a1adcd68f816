import { AppError } from '@wombat/core/platform';
import { jobFilterName } from '@wombat/core/jobs';
import { purgeDeadLetters, requeueRun } from '@wombat/core/runs';
import { apiDb, deadLetterIds, listDeadLetters, runView } from '@wombat/api';
import type { Command } from 'commander';
import { EXIT, usage, type Act } from '../context.ts';
import { checkRunId } from '../follow.ts';
import { errorMessage, json, shortTime, table } from '../output.ts';
import { limitOf, sinceOf } from './runs.ts';

const MAX_BATCH = 1000;

export function registerDlq(program: Command, act: Act): void {
  const dlq = program.command('dlq').description('dead letters: runs whose final attempt failed and that nobody requeued yet');

  dlq
    .command('list', { isDefault: true })
    .description('dead letters, newest first, with their errors')
    .option('--job <job>', 'only this job type (or its name in the older setup)')
    .option('--since <age or instant>', 'failed within this age (30m, 2h, 1d) or since this ISO instant')
    .option('--limit <n>', 'at most this many (1-1000)', '50')
    .action(
      act(async (ctx, opts: { job?: string; since?: string; limit: string }) => {
        const limit = limitOf(opts.limit);
        const since = opts.since === undefined ? undefined : sinceOf(opts.since);
        const { db } = await ctx.database();
        const { runs, total } = await listDeadLetters(apiDb(db), { job: jobFilterName(opts.job), since, limit, offset: 0 });
        if (ctx.opts.json) ctx.out(json({ dead_letters: runs.map(runView), total, limit }));
        else {
          ctx.out(table(['id', 'job', 'trigger', 'failed at', 'attempts', 'error'], runs.map((r) => [r.id, r.job, r.trigger, shortTime(r.finished_at), r.attempts, errorMessage(r.error)?.slice(0, 100)])));
          ctx.out(`${total} dead letter(s)${total > runs.length ? ` (${runs.length} shown)` : ''}`);
        }
        return EXIT.ok;
      }),
    );

  dlq
    .command('requeue [ids...]')
    .description('run dead letters again, each as a new run with the same job and parameters')
    .option('--all', 'every dead letter (of --job when given), oldest first')
    .option('--job <job>', 'every dead letter of this job type (or its name in the older setup)')
    .option('--limit <n>', `at most this many (1-${MAX_BATCH})`, String(MAX_BATCH))
    .action(
      act(async (ctx, ids: string[], opts: { all?: boolean; job?: string; limit: string }) => {
        const given = ids.map(checkRunId);
        if ((given.length > 0) === Boolean(opts.all || opts.job)) throw usage('dlq requeue: give run ids, or --all, or --job <job> (not both)');
        const { db } = await ctx.database();
        const adb = apiDb(db);
        const chosen = await deadLetterIds(adb, { job: jobFilterName(opts.job), ...(given.length > 0 ? { ids: given } : {}), limit: limitOf(opts.limit, MAX_BATCH) });
        const boss = await ctx.boss();
        const requeued: { id: string; task_id: string }[] = [];
        const notRequeued: { id: string; reason: string }[] = [];
        for (const id of chosen) {
          try {
            requeued.push({ id, task_id: await requeueRun(db, boss, id, { trigger: 'manual', onlyDeadLetter: true }) });
          } catch (err) {
            if (err instanceof AppError) notRequeued.push({ id, reason: err.message });
            else throw err;
          }
        }
        const found = new Set(chosen);
        for (const id of given) if (!found.has(id)) notRequeued.push({ id, reason: 'not a dead letter (unknown, not failed, or already requeued)' });
        if (ctx.opts.json) ctx.out(json({ requeued, count: requeued.length, not_requeued: notRequeued }));
        else {
          for (const r of requeued) ctx.out(`${r.id} requeued as ${r.task_id}`);
          for (const r of notRequeued) ctx.err(`${r.id} not requeued: ${r.reason}`);
          ctx.out(`${requeued.length} requeued`);
        }
        // Asked for specific runs and some could not be requeued: the caller must look.
        return notRequeued.length > 0 ? (requeued.length === 0 && given.length > 0 && chosen.length === 0 ? EXIT.notFound : EXIT.failed) : EXIT.ok;
      }),
    );

  dlq
    .command('purge')
    .description('delete dead letters that failed more than a given age ago')
    .requiredOption('--older-than <hours>', 'delete those that failed more than this many hours ago (0: all)')
    .option('--job <job>', 'only this job type (or its name in the older setup)')
    .action(
      act(async (ctx, opts: { olderThan: string; job?: string }) => {
        const hours = Number(opts.olderThan);
        if (!/^\d+$/.test(opts.olderThan) || hours > 87_600) throw usage(`--older-than must be whole hours from 0 to 87600, not "${opts.olderThan}"`);
        const { db } = await ctx.database();
        const purged = await purgeDeadLetters(db, new Date(Date.now() - hours * 3_600_000), jobFilterName(opts.job));
        ctx.out(ctx.opts.json ? json({ purged }) : `${purged} dead letter(s) purged`);
        return EXIT.ok;
      }),
    );
}
