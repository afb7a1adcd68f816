import type { Command } from 'commander';
import { CliError, EXIT } from '../context.ts';
import { json, shortTime, table } from '../output.ts';
import { listWorkers, type WorkerRow } from '../queries.ts';
import type { Act } from '../program.ts';

export function workerView(w: WorkerRow, now = new Date()) {
  return {
    id: w.id,
    host: w.host,
    pid: w.pid,
    version: w.version,
    state: w.stopped_at !== null ? 'stopped' : w.alive ? 'alive' : 'stale',
    queues: w.queues,
    concurrency: w.concurrency,
    runs_in_hand: w.runs_in_hand,
    rss_bytes: w.rss_bytes,
    started_at: new Date(w.started_at).toISOString(),
    last_heartbeat: new Date(w.last_beat_at).toISOString(),
    heartbeat_age_seconds: Math.max(0, Math.round((now.getTime() - new Date(w.last_beat_at).getTime()) / 100) / 10),
    stopped_at: w.stopped_at === null ? null : new Date(w.stopped_at).toISOString(),
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
        if (workers === null) throw new CliError(EXIT.database, 'not_migrated', 'this database has no worker registry (wombat.workers): run migrations (npm run migrate) with this version of Wombat');
        const shown = workers.filter((w) => opts.all || w.stopped_at === null).map((w) => workerView(w));
        if (ctx.opts.json) ctx.out(json({ workers: shown }));
        else {
          ctx.out(
            table(
              ['id', 'host', 'pid', 'state', 'queues', 'concurrency', 'in hand', 'rss', 'last beat', 'started'],
              shown.map((w) => [w.id.slice(0, 8), w.host, w.pid, w.state, w.queues.join(','), w.concurrency, w.runs_in_hand, w.rss_bytes === null ? null : `${Math.round(w.rss_bytes / 1_048_576)}MB`, `${w.heartbeat_age_seconds}s ago`, shortTime(w.started_at)]),
            ),
          );
        }
        return EXIT.ok;
      }),
    );
}
