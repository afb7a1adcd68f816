import { engineView } from '@wombat/api';
import { listWorkers, workerView } from '@wombat/core/workers';
import { listEngines } from '@wombat/core/schedules';
import { Option, type Command } from 'commander';
import { EXIT, usage, type Act } from '../context.ts';
import { json, percent, shortTime, table } from '../output.ts';
import { deadLetterCount, openAlerts, queueStats } from '../queries.ts';

export function registerStatus(program: Command, act: Act): void {
  program
    .command('status')
    .description('engines, workers, queues (waiting, running, failure rate), dead letters and open alerts, like `rq info`; exit 1 when unhealthy, so it serves as a health check')
    .addOption(new Option('--window <minutes>', 'failure rate over the last N minutes').default('60'))
    .addHelpText('after', `
Unhealthy (exit 1) when no scheduler-engine is alive, when the worker registry exists and no
worker is alive, or when a critical alert is open. Warnings and dead letters are reported, not
judged (one worker per queue is a standing warning, not an outage).`)
    .action(
      act(async (ctx, opts: { window: string }) => {
        const windowMinutes = Number(opts.window);
        if (!Number.isInteger(windowMinutes) || windowMinutes < 1 || windowMinutes > 43_200) throw usage(`--window must be whole minutes from 1 to 43200, not "${opts.window}"`);
        const { db } = await ctx.database();
        const now = new Date();
        const [engines, workers, queues, deadLetters, alerts] = await Promise.all([
          listEngines(db),
          listWorkers(db),
          queueStats(db, windowMinutes),
          deadLetterCount(db),
          openAlerts(db),
        ]);
        const engineRows = engines.filter((e) => e.stoppedAt === null || now.getTime() - e.stoppedAt.getTime() < 86_400_000).map((e) => engineView(e, now));
        const problems: string[] = [];
        if (!engines.some((e) => e.alive)) problems.push('no scheduler-engine is alive: start one (systemctl start wombat-scheduler-engine, or wombat engine)');
        if (!workers.some((w) => w.alive)) problems.push('no worker is alive: start one (systemctl start wombat-worker)');
        const critical = alerts.filter((a) => a.severity === 'critical').length;
        if (critical > 0) problems.push(`${critical} critical alert(s) open`);
        const healthy = problems.length === 0;
        const report = {
          healthy,
          problems,
          engines: engineRows,
          workers: workers.filter((w) => w.alive || w.stoppedAt === null).map((w) => workerView(w, now)),
          queues: queues.map((q) => ({ ...q, failure_window_minutes: windowMinutes })),
          dead_letters: deadLetters,
          alerts,
        };
        if (ctx.opts.json) {
          ctx.out(json(report));
        } else {
          ctx.out(`${healthy ? 'healthy' : 'UNHEALTHY'}${problems.map((p) => `\n  - ${p}`).join('')}\n`);
          ctx.out(`engines (${engines.filter((e) => e.alive).length} alive)`);
          ctx.out(table(['host', 'pid', 'state', 'version', 'last beat', 'started'], engineRows.map((e) => [e.host, e.pid, e.state, e.version, `${e.heartbeat_age_seconds}s ago`, shortTime(e.started_at)])));
          ctx.out(`\nworkers (${workers.filter((w) => w.alive).length} alive)`);
          ctx.out(table(['host', 'pid', 'state', 'queues', 'in hand', 'last beat'], report.workers.map((w) => [w.host, w.pid, w.state, w.queues.join(','), w.runs_in_hand, `${w.heartbeat_age_seconds}s ago`])));
          ctx.out(`\nqueues (failure rate over the last ${windowMinutes} min)`);
          ctx.out(table(['job', 'waiting', 'running', 'completed', 'failed', 'failure rate'], queues.map((q) => [q.job, q.waiting, q.running, q.completed, q.failed, percent(q.failure_rate)])));
          ctx.out(`\ndead letters: ${deadLetters}${deadLetters > 0 ? ' (wombat dlq list)' : ''}`);
          ctx.out(`alerts open: ${alerts.length}`);
          for (const a of alerts) ctx.out(`  - ${a.severity} ${a.subject}`);
        }
        return healthy ? EXIT.ok : EXIT.failed;
      }),
    );
}
