import { pingDatabase } from '@wombat/core';
import Type from 'typebox';
import type { App, AppDeps } from '../app.ts';

const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  database: Type.Object({ ok: Type.Boolean(), latency_ms: Type.Integer(), error: Type.Optional(Type.String()) }),
});

/** Answers within this even when Postgres hangs, so a probe never times out on us. */
const PING_DEADLINE_MS = 2000;

export function healthRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/health',
    {
      config: { access: 'none' },
      schema: { summary: 'liveness and database status', tags: ['status'], security: [], response: { 200: HealthSchema, 503: HealthSchema } },
    },
    async (_request, reply) => {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<{ ok: false; latencyMs: number; error: string }>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, latencyMs: PING_DEADLINE_MS, error: 'database did not answer in time' }), PING_DEADLINE_MS);
      });
      const ping = await Promise.race([pingDatabase(deps.sql), deadline]).finally(() => clearTimeout(timer));
      const database = { ok: ping.ok, latency_ms: ping.latencyMs, ...(ping.error !== undefined ? { error: ping.error } : {}) };
      return reply.status(ping.ok ? 200 : 503).send({ status: ping.ok ? 'ok' : 'degraded', database });
    },
  );
}
