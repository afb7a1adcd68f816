import { apiDb, listRuns, runView } from '@wombat/api';
import { jobFilterName } from '@wombat/core/jobs';
import { Option, type Command } from 'commander';
import { EXIT, usage, type Act } from '../context.ts';
import { duration, errorMessage, json, shortTime, table } from '../output.ts';
import { RUN_STATES } from '../queries.ts';
import { resolveSchedule } from './schedule-input.ts';

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "30m", "2h", "1d", "1w" ago, or an ISO 8601 instant. */
export function sinceOf(v: string, now = Date.now()): Date {
  const m = /^(\d{1,6})(s|m|h|d|w)$/.exec(v.trim());
  if (m) return new Date(now - Number(m[1]) * UNITS[m[2]!]!);
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw usage(`--since must be an age like 30m, 2h, 1d or an ISO 8601 instant like 2026-01-01T00:00:00Z, not "${v}"`);
  return d;
}

export function limitOf(v: string, max = 1000): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) throw usage(`--limit must be a whole number from 1 to ${max}, not "${v}"`);
  return n;
}

export function registerRuns(program: Command, act: Act): void {
  program
    .command('runs')
    .description('run history, newest first: what ran, why, when, how late, how it ended')
    .option('--schedule <schedule>', 'runs of this schedule (id or name)')
    .option('--job <job>', 'runs of this job type (or its name in the older setup)')
    .addOption(new Option('--state <state>', 'runs in this state').choices([...RUN_STATES]))
    .option('--since <age or instant>', 'created within this age (30m, 2h, 1d) or since this ISO instant')
    .option('--limit <n>', 'at most this many (1-1000)', '20')
    .action(
      act(async (ctx, opts: { schedule?: string; job?: string; state?: string; since?: string; limit: string }) => {
        const limit = limitOf(opts.limit);
        const since = opts.since === undefined ? undefined : sinceOf(opts.since);
        const { db } = await ctx.database();
        const scheduleId = opts.schedule === undefined ? undefined : (await resolveSchedule(db, opts.schedule)).id;
        const { runs, total } = await listRuns(apiDb(db), { scheduleId, job: jobFilterName(opts.job), state: opts.state as never, since, limit, offset: 0 });
        if (ctx.opts.json) {
          ctx.out(json({ runs: runs.map(runView), total, limit }));
          return EXIT.ok;
        }
        ctx.out(
          table(
            ['id', 'job', 'trigger', 'state', 'progress', 'created', 'lateness', 'took', 'error'],
            runs.map((r) => {
              const v = runView(r);
              return [v.id, v.job, v.trigger, v.state, `${Math.round(v.progress * 100)}%`, shortTime(v.created_at), duration(v.start_lateness_ms), duration(v.duration_ms), errorMessage(v.error)?.slice(0, 80) ?? v.reason];
            }),
          ),
        );
        if (total > runs.length) ctx.out(`(${runs.length} of ${total}; --limit shows more)`);
        return EXIT.ok;
      }),
    );
}
