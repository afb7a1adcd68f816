import { pingDatabase } from '@wombat/core/platform';
import Type from 'typebox';
import type { App, AppDeps } from '../deps.ts';
import { API_DEADLINE_DEFAULTS } from '../config.ts';
import type { WriterHealth } from '../submitter.ts';

const WriterSchema = Type.Object({
  ok: Type.Boolean(),
  in_flight_ms: Type.Integer(),
  queued: Type.Integer(),
  abandoned_unsettled: Type.Integer(),
  problem: Type.Optional(Type.String()),
});

const HealthSchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  database: Type.Object({
    ok: Type.Boolean(),
    latency_ms: Type.Integer(),
    code: Type.Optional(Type.String({ description: 'when not ok: timeout, unreachable, auth_failed, no_database, starting, shutting_down, too_many_connections or error' })),
    error: Type.Optional(Type.String({ description: "when not ok: a short reason; the driver's message is in the api's journal" })),
  }),
  writers: Type.Optional(Type.Record(Type.String(), WriterSchema, { description: "the api's in-process writers (task submission)" })),
});

/**
 * 200 when the database answers and no in-process writer is stuck; 503 otherwise,
 * so a probe (systemd watchdog, load balancer) restarts or drains this api. Answers
 * within the ping deadline even when Postgres hangs.
 */
export function healthRoutes(app: App, deps: AppDeps, opts: { writers: Record<string, { health(): WriterHealth }> }): void {
  const pingTimeoutMs = deps.healthPingTimeoutMs ?? API_DEADLINE_DEFAULTS.healthPingTimeoutMs;
  app.get(
    '/health',
    {
      config: { access: 'none' },
      schema: { summary: 'liveness, database and writer status', tags: ['status'], security: [], response: { 200: HealthSchema, 503: HealthSchema } },
    },
    async (request, reply) => {
      const ping = await pingDatabase(deps.sql, pingTimeoutMs);
      // /health is open to anyone: the driver's message (role, host, port) goes to the journal only.
      if (!ping.ok) request.log.warn({ err: ping.err, code: ping.code }, 'health: database ping failed');
      const database = { ok: ping.ok, latency_ms: ping.latencyMs, ...(ping.code !== undefined ? { code: ping.code, error: ping.reason } : {}) };
      const writers = Object.fromEntries(Object.entries(opts.writers).map(([name, w]) => [name, w.health()]));
      const ok = ping.ok && Object.values(writers).every((w) => w.ok);
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', database, writers });
    },
  );
}
