import { AppError, ValidationError } from '@wombat/core/platform';
import { checkJobParams } from '@wombat/core/jobs';
import { describeTrigger, getScheduleByName, listEngines, listSchedules } from '@wombat/core/schedules';
import { publishRun, triggerSchedule } from '@wombat/core/runs';

/** The built-in schedule of the daily candle collection (scheduler-engine built-ins). */
export const DAILY_CANDLES_SCHEDULE = 'daily-candles';
import Type from 'typebox';
import type { App, AppDeps } from '../deps.ts';
import { notFound } from '../http-errors.ts';
import { apiDb } from '../runs-store.ts';
import { EngineSchema, engineView, nextRunOf } from '../schedule-views.ts';
import { ErrorSchema, JobNameSchema, RunStateSchema, jobTypeOf } from '../views.ts';
import { WorkersSchema, workersBody } from './workers.ts';

const time = Type.Union([Type.String({ format: 'date-time' }), Type.Null()]);
const StatusSchema = Type.Object({
  running: Type.Boolean({ description: 'true when a scheduler-engine is alive with scheduling enabled (the replaced system\'s scheduler.running)' }),
  jobs: Type.Array(
    Type.Object({
      id: Type.String({ description: 'schedule id' }),
      name: Type.String(),
      trigger: Type.String({ description: 'e.g. "at 09:00", "cron 0 * * * *", "every 5m"' }),
      next_run: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'null while paused' }),
    }),
    { description: 'active and paused schedules in the replaced system\'s job shape' },
  ),
  engines: Type.Array(EngineSchema),
  workers: WorkersSchema,
  schedules: Type.Array(
    Type.Object({
      id: Type.Integer(),
      name: Type.String(),
      job: Type.String(),
      trigger: Type.String(),
      timezone: Type.String(),
      status: Type.String(),
      paused_reason: Type.Union([Type.String(), Type.Null()]),
      built_in: Type.Boolean(),
      next_run_at: time,
      last_run_at: time,
      last_run: Type.Union([
        Type.Object({
          id: Type.String(),
          state: RunStateSchema,
          finished_at: time,
          error: Type.Unknown(),
        }),
        Type.Null(),
      ]),
    }),
  ),
});

const TriggerBody = Type.Object(
  {
    schedule_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 9_007_199_254_740_991, description: 'run this schedule now, with its parameters' })),
    job: Type.Optional(JobNameSchema),
    params: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'job parameters; with schedule_id they replace the schedule\'s' })),
  },
  { additionalProperties: false, description: 'give at most one of schedule_id or job; no body runs the daily candle collection (the daily-candles schedule) now' },
);

export function statusRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/api/scheduler/status',
    { schema: { summary: 'engines (running, stale, disabled), workers (alive, stale, stopped) and every schedule with its next and last run', tags: ['scheduler'], response: { 200: StatusSchema } } },
    async () => {
      const [engines, schedules, workers] = await Promise.all([listEngines(deps.db), listSchedules(deps.db), workersBody(deps)]);
      const lastIds = schedules.map((s) => s.lastRunId).filter((id): id is string => id !== null);
      const lastRuns =
        lastIds.length === 0
          ? []
          : await apiDb(deps.db).selectFrom('wombat.runs').select(['id', 'state', 'finished_at', 'error']).where('id', 'in', lastIds).execute();
      const byId = new Map(lastRuns.map((r) => [r.id, r]));
      const now = new Date();
      return {
        running: engines.some((e) => e.alive && e.enabled),
        jobs: schedules.map((s) => {
          const next = nextRunOf(s, now);
          return { id: String(s.id), name: s.name, trigger: describeTrigger(s), next_run: next === null ? null : next.toISOString() };
        }),
        engines: engines.map((e) => engineView(e, now)),
        workers,
        schedules: schedules.map((s) => {
          const last = s.lastRunId === null ? undefined : byId.get(s.lastRunId);
          const next = nextRunOf(s, now);
          return {
            id: s.id,
            name: s.name,
            job: s.job,
            trigger: describeTrigger(s),
            timezone: s.timezone,
            status: s.status,
            paused_reason: s.pausedReason,
            built_in: s.builtIn,
            next_run_at: next === null ? null : next.toISOString(),
            last_run_at: s.lastRunAt === null ? null : s.lastRunAt.toISOString(),
            last_run: last
              ? { id: last.id, state: last.state, finished_at: last.finished_at === null ? null : last.finished_at.toISOString(), error: last.error }
              : null,
          };
        }),
      };
    },
  );

  app.post(
    '/api/scheduler/trigger',
    {
      schema: {
        summary: 'run a schedule or a job now; no body: the daily candle collection; answers 202 with the run id',
        tags: ['scheduler'],
        body: Type.Optional(TriggerBody),
        response: {
          202: Type.Object({ run_id: Type.String(), task_id: Type.String(), status: Type.Literal('queued') }),
          400: ErrorSchema,
          401: ErrorSchema,
          403: ErrorSchema,
          404: ErrorSchema,
        },
      },
    },
    async (request, reply) => {
      const b = request.body;
      if (b.schedule_id !== undefined && b.job !== undefined) {
        throw new AppError('invalid_input', 'body: give one of "schedule_id" (a schedule to run now) or "job" (a job type to run now), not both');
      }
      let runId: string;
      if (b.schedule_id === undefined && b.job === undefined) {
        // The replaced system's trigger: no body runs the daily candle collection now.
        if (b.params !== undefined) throw new AppError('invalid_input', 'body: "params" needs "schedule_id" or "job"');
        const daily = await getScheduleByName(deps.db, DAILY_CANDLES_SCHEDULE);
        if (!daily) {
          throw new AppError('schedule_not_found', `no ${DAILY_CANDLES_SCHEDULE} schedule yet: start the scheduler-engine once (it creates the built-in schedules), or give "schedule_id" or "job"`);
        }
        runId = (await triggerSchedule(deps.db, deps.boss, daily.id))!;
      } else if (b.job !== undefined) {
        const job = jobTypeOf(b.job, 'job');
        const check = checkJobParams(job, b.params ?? {});
        if (!check.ok) throw new ValidationError(check.problems.map((message) => ({ field: 'params', message })));
        runId = await publishRun(deps.db, deps.boss, { job, params: check.value as object, trigger: 'manual' });
      } else {
        const id = await triggerSchedule(deps.db, deps.boss, b.schedule_id!, b.params !== undefined ? { params: b.params } : {});
        if (id === null) throw notFound('schedule', b.schedule_id!);
        runId = id;
      }
      return reply.status(202).header('location', `/api/runs/${runId}`).send({ run_id: runId, task_id: runId, status: 'queued' as const });
    },
  );
}
