import { sql } from 'kysely';
import type { RunState } from '@wombat/core/runs';
import Type from 'typebox';
import { RunStateSchema } from '../views.ts';
import type { App, AppDeps } from '../deps.ts';

const GraphNode = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  job: Type.String(),
  status: Type.String({ description: 'active or paused' }),
  after: Type.Array(Type.String(), { description: 'the schedules it waits for' }),
  last_run_id: Type.Union([Type.String(), Type.Null()]),
  last_run_state: Type.Union([RunStateSchema, Type.Null()], { description: 'the state of its latest run (any trigger); null: none yet' }),
});

const GraphAnswer = Type.Object({
  nodes: Type.Array(GraphNode),
  edges: Type.Array(Type.Object({ from: Type.String({ description: 'the prerequisite' }), to: Type.String({ description: 'the schedule that waits for it' }) })),
});

/** The schedules' dependency graph (after), each schedule with its latest run's state: what the dashboard draws. */
export function scheduleGraphRoutes(app: App, deps: AppDeps): void {
  app.get(
    '/api/schedules/graph',
    { schema: { summary: 'the schedules as a dependency graph: nodes with their last run\'s state, edges from a prerequisite to the schedule waiting for it', tags: ['schedules'], response: { 200: GraphAnswer } } },
    async () => {
      // The latest run per schedule: one index probe each (runs_schedule_created); fan-out children are their parent's.
      const { rows } = await sql<{ id: number; name: string; job: string; status: string; after: string[]; last_run_id: string | null; last_run_state: RunState | null }>`
        select s.id, s.name, s.job, s.status, s.after, r.id as last_run_id, r.state as last_run_state
        from wombat.schedules s
        left join lateral (
          select id, state from wombat.runs where schedule_id = s.id and parent_id is null order by created_at desc limit 1
        ) r on true
        order by s.id`.execute(deps.db);
      const nodes = rows.map((r) => ({ ...r, id: Number(r.id) }));
      return { nodes, edges: nodes.flatMap((n) => n.after.map((from) => ({ from, to: n.name }))) };
    },
  );
}
