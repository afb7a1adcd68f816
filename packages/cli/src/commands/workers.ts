import type { Command } from 'commander';
import { listWorkers, workerView } from '@wombat/core/workers';
import { EXIT, type Act } from '../context.ts';
import { json, shortTime, table } from '../output.ts';

export function registerWorkers(program: Command, act: Act): void {
  program
    .command('workers')
    .description('worker processes from the worker registry: host, pid, queues, runs in hand, memory, heartbeat')
    .option('--all', 'include stopped workers')
    .action(
      act(async (ctx, opts: { all?: boolean }) => {
        const { db } = await ctx.database();
        const workers = await listWorkers(db);
        const shown = workers.filter((w) => opts.all || w.stoppedAt === null).map((w) => workerView(w, new Date()));
        if (ctx.opts.json) ctx.out(json({ workers: shown }));
        else {
          ctx.out(
            table(
              ['id', 'host', 'pid', 'state', 'queues', 'concurrency', 'in hand', 'rss', 'last beat', 'started'],
              shown.map((w) => [w.id.slice(0, 8), w.host, w.pid, w.state, w.queues.join(','), w.concurrency, w.runs_in_hand, `${Math.round(w.rss_bytes / 1_048_576)}MB`, `${w.heartbeat_age_seconds}s ago`, shortTime(w.started_at)]),
            ),
          );
        }
        return EXIT.ok;
      }),
    );
}
