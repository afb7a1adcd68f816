import { cachedDatabaseHealth } from '@wombat/core/alerts';
import type { App, AppDeps } from '../deps.ts';
import { createMetrics } from '../metrics.ts';

export function metricsRoutes(app: App, deps: AppDeps): void {
  const metrics = createMetrics(deps.sql, { staleFactor: deps.alertStaleFactor ?? 1.5, databaseHealth: cachedDatabaseHealth(deps.db, deps.watchedPaths ?? [], 10_000) });
  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics: queues, runs by state, failures, durations, dead letters, engines, live workers and their memory, publish lag, schedules, alerts', tags: ['status'], produces: ['text/plain'] } },
    async (_request, reply) => {
      const text = await metrics.render();
      return reply.type(metrics.contentType).send(text);
    },
  );
}
