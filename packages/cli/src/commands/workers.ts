import type { Command } from 'commander';
import { listWorkers, type WorkerStatus } from '@wombat/core';
import { EXIT } from '../context.ts';
import { json, shortTime, table } from '../output.ts';
import type { Act } from '../program.ts';

export function workerView(w: WorkerStatus, now = new Date()) {
  return {
    id: w.id,
    host: w.host,
    pid: w.pid,
    version: w.version,
    state: w.stoppedAt !== null ? 'stopped' : w.alive ? 'alive' : 'stale',
    queues: w.queues,
    concurrency: w.concurrency,
    runs_in_hand: w.runsInHand,
    rss_bytes: w.rssBytes,
    started_at: w.startedAt.toISOString(),
    last_heartbeat: w.lastBeatAt.toISOString(),
    heartbeat_age_seconds: Math.max(0, Math.round((now.getTime() - w.lastBeatAt.getTime()) / 100) / 10),
    stopped_at: w.stoppedAt === null ? null : w.stoppedAt.toISOString(),
  };
}

export function registerWorkers(program: Command, act: Act): void {
  program
    .command('workers')
    .description('worker processes from the worker registry: host, pid, queues, runs in hand, memory, heartbeat')
    .option('--all', 'include stopped workers')
    .action(
      act(async (ctx, opts: { all?: boolean }) => {
        const { db } = await ctx.database();
        const workers = await listWorkers(db);
        const shown = workers.filter((w) => opts.all || w.stoppedAt === null).map((w) => workerView(w));
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
