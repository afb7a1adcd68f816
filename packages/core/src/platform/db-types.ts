import type { ColumnType } from 'kysely';

/**
 * Column types every domain's row types are made of. The tables themselves are the
 * domains': each exports its own (RunTables, WorkerTables, SchedulerTables, AlertTables,
 * the collectors' CollectorTables and CrawlTables), and a handle that serves several
 * composes them: `Database<RunTables & WorkerTables>`.
 */
export type Json = unknown;
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default: optional on insert, a Date when selected. */
export type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
