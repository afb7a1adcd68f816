import type { Command } from 'commander';
import { listWorkers, workerView } from '@wombat/core/workers';
import { EXIT, type Act } from '../context.ts';
import { json, shortTime, table } from '../output.ts';

type WorkerView = ReturnType<typeof workerView>;

/**
 * A worker's queues as `canary 4×500, fetch-candles 4×1`: fetch loops × batch size,
 * so at most their product of that queue's handlers run at once. A worker that did
 * not record them shows its queue names alone.
 */
export function queuesCell(w: Pick<WorkerView, 'queues' | 'queue_settings'>): string {
  if (w.queue_settings === null) return w.queues.join(', ');
  return w.queue_settings.map((q) => `${q.queue} ${q.loops}×${q.batch_size}`).join(', ');
}

export function registerWorkers(program: Command, act: Act): void {
  program
    .command('workers')
    .description('worker processes from the worker registry: host, pid, runs in hand, memory, heartbeat, and each queue with its fetch loops × batch size')
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
              ['id', 'host', 'pid', 'state', 'in hand', 'rss', 'last beat', 'started', 'queues (loops×batch)'],
              shown.map((w) => [w.id.slice(0, 8), w.host, w.pid, w.state, w.runs_in_hand, `${Math.round(w.rss_bytes / 1_048_576)}MB`, `${w.heartbeat_age_seconds}s ago`, shortTime(w.started_at), queuesCell(w)]),
            ),
          );
        }
        return EXIT.ok;
      }),
    );
}
