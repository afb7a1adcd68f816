import { PgBoss, type ConstructorOptions } from 'pg-boss';
import { AppError } from './errors.ts';
import { DATABASE_DEADLINE_DEFAULTS } from './db.ts';
import type { Logger } from './logger.ts';

export { PgBoss, fromKysely } from 'pg-boss';
export type { Job, JobWithMetadata, SendOptions, WorkOptions } from 'pg-boss';

export const BOSS_SCHEMA = 'pgboss';

/**
 * Who a pg-boss instance is. Only the migrator installs or upgrades pg-boss's
 * schema and only the engine runs its maintenance, so a fleet of workers and api
 * processes never compete for those locks.
 */
export type BossRole = 'migrator' | 'maintainer' | 'worker' | 'producer';

/**
 * How often pg-boss's monitor passes run: each one aggregates its queue statistics over the
 * whole job table (a scan of every job it keeps, queued ones included, which Wombat never
 * reads), then fails jobs past their timeout or heartbeat. The engine's reconciler fails lost
 * attempts itself within JOB_HEARTBEAT_S, from indexes that hold only active jobs, so the
 * monitor is the fallback for when no engine runs: every 5 minutes, which keeps a backlog of a
 * million jobs from costing the database a scan every few seconds. Workers run it too, so a dead
 * worker's job is still failed (and retried) with no engine running; pg-boss claims each queue's
 * pass in the database, so more supervisors do not mean more passes (deletion is claimed per
 * queue the same way, on pg-boss's own long interval).
 */
const MONITOR = { superviseIntervalSeconds: 10, monitorIntervalSeconds: 300 } as const;

const roleOptions: Record<BossRole, Partial<ConstructorOptions>> = {
  migrator: { migrate: true, createSchema: true, supervise: false, schedule: false },
  maintainer: { migrate: false, createSchema: false, supervise: true, schedule: false, ...MONITOR },
  worker: { migrate: false, createSchema: false, supervise: true, schedule: false, useListenNotify: true, ...MONITOR },
  producer: { migrate: false, createSchema: false, supervise: false, schedule: false },
};

export interface BossOptions {
  url: string;
  role: BossRole;
  log: Logger;
  /** pg-boss keeps its own small pool, apart from the query pool. */
  poolSize?: number;
  /** Opening a connection of pg-boss's pool fails after this long (DATABASE_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number;
  extra?: Partial<ConstructorOptions>;
}

export async function startBoss(opts: BossOptions): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: opts.url,
    schema: BOSS_SCHEMA,
    max: opts.poolSize ?? 4,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? DATABASE_DEADLINE_DEFAULTS.connectTimeoutMs,
    ...roleOptions[opts.role],
    ...opts.extra,
  });
  const log = opts.log.child({ component: 'pg-boss' });
  // Background failures (maintenance, polling, notify listener) surface only here.
  boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
  boss.on('warning', (warning) => log.warn({ warning }, 'pg-boss warning'));
  try {
    await boss.start();
  } catch (err) {
    await boss.stop({ graceful: false, close: true }).catch(() => {});
    if (opts.role !== 'migrator' && /does not exist|not installed|relation/i.test(String((err as Error).message))) {
      throw new AppError('boss_not_installed', 'the job queue schema is missing: run migrations first (npm run migrate)', { cause: err });
    }
    throw err;
  }
  return boss;
}
