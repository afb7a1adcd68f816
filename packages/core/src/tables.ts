import type { AlertTables } from './alerts/tables.ts';
import type { RunTables } from './runs/tables.ts';
import type { SchedulerTables } from './schedules/tables.ts';
import type { WorkerTables } from './workers/tables.ts';

/**
 * The tables of core's domains together, for a handle that serves them all (a
 * service's query pool, the CLI's, a test database). Each domain's statements take
 * their own tables only; the collectors' (CollectorTables, CrawlTables) are added
 * where a handle needs them. Import as `@wombat/core/tables`.
 */
export type CoreTables = RunTables & WorkerTables & SchedulerTables & AlertTables;
