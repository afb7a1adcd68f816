import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { AppError, unstorableText } from '@wombat/core/platform';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyReply } from 'fastify';
import { accessForMethod, authorize, type Access } from './auth.ts';
import { errorBody, handleError } from './http-errors.ts';
import { validatorCompiler } from './validation.ts';
import { NoQuerySchema } from './views.ts';
import { alertRoutes } from './routes/alerts.ts';
import { deadLetterRoutes } from './routes/dead-letters.ts';
import { healthRoutes } from './routes/health.ts';
import { metaRoutes } from './routes/meta.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { runRoutes } from './routes/runs.ts';
import { backfillRoutes } from './routes/backfill.ts';
import { scheduleGraphRoutes } from './routes/schedule-graph.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { statusRoutes } from './routes/status.ts';
import { taskRoutes } from './routes/tasks.ts';
import { uiRoutes } from './routes/ui.ts';
import { workerRoutes } from './routes/workers.ts';
import type { App, AppDeps } from './deps.ts';
import { createSubmitter } from './submitter.ts';
import { API_DEADLINE_DEFAULTS } from './config.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; defaults by method: reads 'read', everything else 'admin'. */
    access?: Access;
  }
}

/** The first number that is not finite (or nesting too deep), as a message saying where. */
function nonFinite(where: string, value: unknown, depth: number): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : `${where} must be a finite number`;
  if (value === null || typeof value !== 'object') return undefined;
  if (depth > MAX_JSON_DEPTH) return `${where} is nested more than ${MAX_JSON_DEPTH} levels deep`;
  for (const [k, v] of Object.entries(value)) {
    const problem = nonFinite(`${where}.${k}`, v, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

const MAX_JSON_DEPTH = 32;

/**
 * The HTTP API as a Fastify instance, not yet listening: main.ts calls listen, tests
 * listen on port 0. Every route validates its input with JSON schemas, which also
 * make up the OpenAPI document at GET /openapi.json.
 */
export async function buildApp(deps: AppDeps): Promise<App> {
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    // Fastify's own per-request lines are off: the onResponse hook logs one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimitBytes ?? 1_048_576,
    // Route params and ids longer than this are not ids: refused before routing.
    routerOptions: { maxParamLength: 200 },
    // Errors raised while routing (bad URL encoding, over-long params) get the same JSON error body.
    frameworkErrors: (err, _request, reply) => {
      const hint = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? '; ids are at most 200 characters' : '';
      void (reply as FastifyReply).status(err.statusCode ?? 400).send(errorBody(err.code.replace(/^FST_ERR_/, '').toLowerCase(), `${err.message}${hint}`));
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Clients of the replaced system POST with "Content-Type: application/json" and no body at all:
  // that is no body (no options), not malformed JSON. Any other body goes to Fastify's own parser.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) =>
    body === '' ? done(null, undefined) : parseJson(request, body as string, done),
  );

  // Unknown fields are refused rather than dropped, so a typo never passes silently.
  app.setValidatorCompiler(validatorCompiler);
  app.setErrorHandler((err, request, reply) => handleError(err as Error, request, reply, deps.reporter));
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(errorBody('route_not_found', `no route ${request.method} ${request.url.split('?')[0]}; GET /openapi.json lists them`));
  });

  // Before body parsing and validation: a caller without the right token learns nothing else.
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.url === undefined) return;
    authorize(deps.auth, request.routeOptions.config.access ?? accessForMethod(request.method), request);
  });
  // A POST without a body (curl -X POST) means "no options": validate it as {}.
  app.addHook('preValidation', async (request) => {
    if (request.body === undefined && request.method !== 'GET' && request.method !== 'HEAD') request.body = {};
  });
  // JSON and query coercion turn 1e400 into Infinity, which the validator lets pass as a number.
  // Strings PostgreSQL cannot store (NUL, lone surrogates) are refused here too, in keys and values.
  app.addHook('preHandler', async (request) => {
    const problem =
      nonFinite('querystring', request.query, 0) ??
      nonFinite('params', request.params, 0) ??
      nonFinite('body', request.body, 0) ??
      // Keys as well as values: NUL or a lone surrogate would be a 500 from Postgres, or U+FFFD stored.
      unstorableText(request.query, 'querystring') ??
      unstorableText(request.params, 'params') ??
      unstorableText(request.body, 'body');
    if (problem) throw new AppError('invalid_request', problem);
  });
  app.addHook('onResponse', async (request, reply) => {
    const level = reply.statusCode >= 500 ? 'error' : reply.statusCode >= 400 ? 'info' : 'debug';
    request.log[level]({ method: request.method, route: request.routeOptions.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  // A route that documents no query parameters takes none: an unknown one is a typo worth a 400.
  app.addHook('onRoute', (route) => {
    if (route.schema && !route.schema.querystring && !route.schema.hide) route.schema.querystring = NoQuerySchema;
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Wombat API',
        version: '0.1.0',
        description: 'Status, triggers, async tasks, schedules, run history, dead letters and metrics. Mutations need "Authorization: Bearer <API_ADMIN_TOKEN>".',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  app.get('/openapi.json', { config: { access: 'none' }, schema: { hide: true } }, async () => app.swagger());

  const submitTimeoutMs = deps.submitTimeoutMs ?? API_DEADLINE_DEFAULTS.submitTimeoutMs;
  const submitter = createSubmitter(deps.db, deps.boss, { deadlineMs: submitTimeoutMs, stuckAfterMs: deps.writerStuckAfterMs ?? Math.max(30_000, 10 * submitTimeoutMs), log: deps.log });
  healthRoutes(app, deps, { writers: { submitter } });
  metricsRoutes(app, deps);
  statusRoutes(app, deps);
  workerRoutes(app, deps);
  taskRoutes(app, deps, submitter);
  runRoutes(app, deps);
  deadLetterRoutes(app, deps);
  scheduleRoutes(app, deps);
  backfillRoutes(app, deps);
  scheduleGraphRoutes(app, deps);
  uiRoutes(app, deps);
  metaRoutes(app);
  alertRoutes(app, deps);
  await app.ready();
  return app;
}
