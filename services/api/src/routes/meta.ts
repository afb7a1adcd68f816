import Type from 'typebox';
import { JOB_TYPES } from '@wombat/core/jobs';
import { MISSED_POLICIES, OVERLAP_POLICIES, SCHEDULE_STATUSES } from '@wombat/core/schedules';
import { ACTIVE_RUN_STATES, DEPENDENCY_SKIP_REASONS, FINISHED_RUN_STATES, RUN_STATES, RUN_TRIGGERS } from '@wombat/core/runs';
import type { App } from '../deps.ts';

/** Each list as core defines it, so the dashboard (or any client) keeps no copy of its own. */
const META = {
  run_states: [...RUN_STATES],
  active_run_states: [...ACTIVE_RUN_STATES],
  finished_run_states: [...FINISHED_RUN_STATES],
  run_triggers: [...RUN_TRIGGERS],
  dependency_skip_reasons: [...DEPENDENCY_SKIP_REASONS],
  job_types: [...JOB_TYPES],
  overlap_policies: [...OVERLAP_POLICIES],
  missed_policies: [...MISSED_POLICIES],
  schedule_statuses: [...SCHEDULE_STATUSES],
};

const list = (description: string) => Type.Array(Type.String(), { description });

export const MetaSchema = Type.Object({
  run_states: list('every state a run can be in, in lifecycle order'),
  active_run_states: list('states of a run that is not finished'),
  finished_run_states: list('states a run ends in'),
  run_triggers: list('what can create a run'),
  dependency_skip_reasons: list('how the reason of a run skipped while it waited for its prerequisites (after) begins: a prerequisite failed for good, or did not complete within wait_for'),
  job_types: list('job types (queues) a task or schedule can name'),
  overlap_policies: list('what a schedule does when its previous run is unfinished'),
  missed_policies: list('what a schedule does with occurrences missed while no engine ran'),
  schedule_statuses: list('states of a schedule'),
});

export function metaRoutes(app: App): void {
  app.get(
    '/api/meta',
    { schema: { summary: 'the names the api uses: run states, triggers, job types, schedule policies', tags: ['status'], response: { 200: MetaSchema } } },
    async () => META,
  );
}
