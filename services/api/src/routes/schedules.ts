import {
  AppError,
  deleteSchedule,
  describeTrigger,
  getSchedule,
  insertSchedule,
  listSchedules,
  nextOccurrences,
  SCHEDULE_DEFAULTS,
  setScheduleStatus,
  triggerSchedule,
  updateSchedule,
  validateScheduleInput,
} from '@wombat/core';
import Type from 'typebox';
import type { App, AppDeps } from '../app.ts';
import { notFound } from '../http-errors.ts';
import { ScheduleSchema, scheduleView } from '../schedule-views.ts';
import { ErrorSchema, NoBodySchema } from '../views.ts';

export const MAX_PREVIEW_COUNT = 100;
const errors = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };
const IdParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: 9_007_199_254_740_991, description: 'schedule id' }) }, { additionalProperties: false });

/**
 * The schedule body is checked by core's validateScheduleInput, the rules the
 * engine applies, so the api and the engine can never disagree; this schema only
 * documents the fields and insists on a JSON object.
 */
const field = (description: string) => Type.Optional(Type.Unknown({ description }));
const ScheduleBody = Type.Object(
  {
    name: field('unique name, 1-100 characters (required on create)'),
    job: field('job type (required on create)'),
    cron: field('cron pattern (5 fields, or 6 with seconds first); give exactly one of cron, every, times'),
    every: field('fixed interval: "30s", "5m", "1h", "1d", "1w", "1mo"'),
    times: field('times of day, e.g. ["09:00", "18:00"]'),
    timezone: field(`IANA time zone (default ${SCHEDULE_DEFAULTS.timezone})`),
    params: field('job parameters (checked against the job)'),
    overlap: field(`allow, skip or queue-one (default ${SCHEDULE_DEFAULTS.overlap})`),
    missed: field(`skip, once or all: what to do with occurrences missed while no engine ran (default ${SCHEDULE_DEFAULTS.missed})`),
    catchup_window_seconds: field(`how far back missed occurrences are caught up (default ${SCHEDULE_DEFAULTS.catchupWindowSeconds})`),
    catchup_max: field(`most missed occurrences run on catch-up (default ${SCHEDULE_DEFAULTS.catchupMax})`),
    jitter_seconds: field('spread publication up to this many seconds after the occurrence (default 0)'),
    timeout_seconds: field('job timeout (default: the job\'s)'),
    max_retries: field('retry limit (default: the job\'s)'),
    retry_delay_seconds: field('delay between retries (default: the job\'s)'),
    retry_backoff: field('exponential backoff between retries (default: the job\'s)'),
    status: field('active or paused (default active)'),
    paused_reason: field('why it is paused'),
  },
  { additionalProperties: true },
);

function invalid(problems: string[]): AppError {
  return new AppError('invalid_input', problems.join('; '), { details: problems });
}

export function scheduleRoutes(app: App, deps: AppDeps): void {
  const db = deps.db;
  const tz = { defaultTimezone: deps.defaultTimezone ?? 'UTC' };
  const one = { 200: ScheduleSchema, ...errors };

  async function found(id: number) {
    const s = await getSchedule(db, id);
    if (!s) throw notFound('schedule', id);
    return s;
  }

  app.get(
    '/api/schedules',
    { schema: { summary: 'every schedule', tags: ['schedules'], response: { 200: Type.Object({ schedules: Type.Array(ScheduleSchema) }) } } },
    async () => ({ schedules: (await listSchedules(db)).map(scheduleView) }),
  );

  app.get('/api/schedules/:id', { schema: { summary: 'one schedule', tags: ['schedules'], params: IdParams, response: one } }, async (request) =>
    scheduleView(await found(request.params.id)),
  );

  app.post(
    '/api/schedules',
    { schema: { summary: 'create a schedule; the engine picks it up without a restart', tags: ['schedules'], body: ScheduleBody, response: { 201: ScheduleSchema, ...errors } } },
    async (request, reply) => {
      const check = validateScheduleInput(request.body, tz);
      if (!check.ok) throw invalid(check.problems);
      const created = await insertSchedule(db, check.value);
      return reply.status(201).header('location', `/api/schedules/${created.id}`).send(scheduleView(created));
    },
  );

  app.patch(
    '/api/schedules/:id',
    { schema: { summary: 'change some fields of a schedule', tags: ['schedules'], params: IdParams, body: ScheduleBody, response: one } },
    async (request) => {
      const check = validateScheduleInput(request.body, { partial: true });
      if (!check.ok) throw invalid(check.problems);
      const updated = await updateSchedule(db, request.params.id, check.value);
      if (!updated) throw notFound('schedule', request.params.id);
      return scheduleView(updated);
    },
  );

  app.put(
    '/api/schedules/:id',
    { schema: { summary: 'replace a schedule\'s definition', tags: ['schedules'], params: IdParams, body: ScheduleBody, response: one } },
    async (request) => {
      const check = validateScheduleInput(request.body, tz);
      if (!check.ok) throw invalid(check.problems);
      const updated = await updateSchedule(db, request.params.id, check.value);
      if (!updated) throw notFound('schedule', request.params.id);
      return scheduleView(updated);
    },
  );

  app.delete(
    '/api/schedules/:id',
    { schema: { summary: 'delete a schedule (its runs stay in the history)', tags: ['schedules'], params: IdParams, body: NoBodySchema, response: { 204: Type.Null(), ...errors } } },
    async (request, reply) => {
      if (!(await deleteSchedule(db, request.params.id))) throw notFound('schedule', request.params.id);
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/api/schedules/:id/pause',
    {
      schema: {
        summary: 'pause a schedule; occurrences while paused are not run',
        tags: ['schedules'],
        params: IdParams,
        body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500, description: 'why, shown in the status' })) }, { additionalProperties: false })),
        response: one,
      },
    },
    async (request) => {
      const s = await setScheduleStatus(db, request.params.id, 'paused', request.body?.reason ?? null);
      if (!s) throw notFound('schedule', request.params.id);
      return scheduleView(s);
    },
  );

  app.post(
    '/api/schedules/:id/resume',
    { schema: { summary: 'resume a paused schedule', tags: ['schedules'], params: IdParams, body: NoBodySchema, response: one } },
    async (request) => {
      const s = await setScheduleStatus(db, request.params.id, 'active');
      if (!s) throw notFound('schedule', request.params.id);
      return scheduleView(s);
    },
  );

  app.post(
    '/api/schedules/:id/trigger',
    {
      schema: {
        summary: 'run a schedule now (paused or not); answers 202 with the run id',
        tags: ['schedules'],
        params: IdParams,
        body: Type.Optional(Type.Object({ params: Type.Optional(Type.Object({}, { additionalProperties: true })) }, { additionalProperties: false })),
        response: { 202: Type.Object({ run_id: Type.String(), task_id: Type.String(), status: Type.Literal('queued') }), ...errors },
      },
    },
    async (request, reply) => {
      const runId = await triggerSchedule(db, deps.boss, request.params.id, request.body?.params !== undefined ? { params: request.body.params } : {});
      if (!runId) throw notFound('schedule', request.params.id);
      return reply.status(202).header('location', `/api/runs/${runId}`).send({ run_id: runId, task_id: runId, status: 'queued' as const });
    },
  );

  const PreviewAnswer = Type.Object({ trigger: Type.String(), timezone: Type.String(), occurrences: Type.Array(Type.String({ format: 'date-time' })) });
  const PreviewQuery = Type.Object(
    {
      count: Type.Integer({ minimum: 1, maximum: MAX_PREVIEW_COUNT, default: 10, description: 'how many occurrences' }),
      after: Type.Optional(Type.String({ format: 'date-time', description: 'occurrences strictly after this instant (default now)' })),
    },
    { additionalProperties: false },
  );

  app.post(
    '/api/schedules/preview',
    {
      schema: {
        summary: 'the next occurrences of a definition, before saving it (same maths as the engine)',
        tags: ['schedules'],
        querystring: PreviewQuery,
        body: ScheduleBody,
        response: { 200: PreviewAnswer, ...errors },
      },
      // Computes, changes nothing: a reader may call it.
      config: { access: 'read' },
    },
    async (request) => {
      // A preview needs only the trigger: name and job default so a half-written definition can be tried.
      const body = { name: 'preview', job: 'canary', ...(request.body as object) };
      const check = validateScheduleInput(body, tz);
      if (!check.ok) throw invalid(check.problems);
      const after = request.query.after === undefined ? new Date() : new Date(request.query.after);
      const occurrences = nextOccurrences(check.value, after, request.query.count);
      return { trigger: describeTrigger(check.value), timezone: check.value.timezone, occurrences: occurrences.map((d) => d.toISOString()) };
    },
  );

  app.get(
    '/api/schedules/:id/preview',
    { schema: { summary: 'the next occurrences of a stored schedule', tags: ['schedules'], params: IdParams, querystring: PreviewQuery, response: { 200: PreviewAnswer, ...errors } } },
    async (request) => {
      const s = await found(request.params.id);
      const after = request.query.after === undefined ? new Date() : new Date(request.query.after);
      return { trigger: describeTrigger(s), timezone: s.timezone, occurrences: nextOccurrences(s, after, request.query.count).map((d) => d.toISOString()) };
    },
  );
}
