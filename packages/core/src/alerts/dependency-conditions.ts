import { sql, type Kysely, type Transaction } from 'kysely';
import type { Condition } from './types.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Db = Kysely<any> | Transaction<any>;

/**
 * A waiting run ended skipped because a prerequisite failed (dependency_failed) or
 * did not complete within wait_for (dependency_timeout): one alert per schedule,
 * naming it and its prerequisites, open until a later run of the schedule completes.
 * The run's reason (which names both schedules) is the message.
 */
export async function dependencySkips(db: Db, o: { alertLookbackHours: number; look: (path: string) => string }): Promise<Condition[]> {
  const { rows } = await sql<{ schedule_id: number; name: string; after: string[]; n: number; reason: string; scheduled_for: Date }>`
    select distinct on (r.schedule_id) r.schedule_id, s.name, s.after, r.reason, r.scheduled_for,
           count(*) over (partition by r.schedule_id)::int as n
    from wombat.runs r join wombat.schedules s on s.id = r.schedule_id
    where r.state = 'skipped' and (starts_with(r.reason, 'dependency_failed:') or starts_with(r.reason, 'dependency_timeout:'))
      and r.created_at > now() - make_interval(hours => ${o.alertLookbackHours})
      and not exists (select 1 from wombat.runs c where c.schedule_id = r.schedule_id and c.state = 'completed' and c.scheduled_for > r.scheduled_for)
    order by r.schedule_id, r.scheduled_for desc`.execute(db);
  return rows.map((r) => {
    const code = r.reason.slice(0, r.reason.indexOf(':'));
    const prerequisites = r.after.join(', ') || 'its prerequisites';
    return {
      key: `dependency_skipped:${r.schedule_id}`,
      kind: 'dependency_skipped',
      severity: 'warning',
      subject: `schedule ${r.name} skipped: its prerequisite ${prerequisites} ${code === 'dependency_failed' ? 'failed' : 'did not complete in time'}`,
      message:
        `${r.n} run(s) of ${r.name} ended skipped waiting for ${prerequisites}; the latest, for ${new Date(r.scheduled_for).toISOString()}: ${r.reason}.\n` +
        `Run it anyway with: wombat trigger ${r.name} --force\nLook: ${o.look(`/api/runs?schedule=${r.schedule_id}&state=skipped`)}`,
      details: { schedule_id: r.schedule_id, schedule: r.name, prerequisites: r.after, code, skipped: r.n, reason: r.reason },
    };
  });
}
