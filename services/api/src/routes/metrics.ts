import type { App, AppDeps } from '../app.ts';
import { collectMetrics, renderMetrics } from '../metrics.ts';

export function metricsRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics: queues, runs by state, failures, durations, dead letters, engines, live workers and their memory, publish lag', tags: ['status'], produces: ['text/plain'] } },
    async (_request, reply) => {
      const text = renderMetrics(await collectMetrics(deps.sql));
      return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
    },
  );
}
