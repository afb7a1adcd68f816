import { resolveFromRoot } from '../platform/common-config.ts';
import { int, oneOf, optionalField, timeOfDay } from '../platform/config.ts';

export const BACKUP_FORMATS = ['auto', 'wombat', 'pg_dump'] as const;
export type BackupFormatSetting = (typeof BACKUP_FORMATS)[number];

/** The backup settings: the engine reads the schedule's, the worker and the CLI all of them. */
export const backupFields = {
  // Relative to the checkout, as DATA_ROOT: the engine, the workers and the CLI agree on it whatever their working directory.
  backupDir: optionalField('BACKUP_DIR', 'directory of the daily database backups (relative to the checkout); unset: the database-backup schedule is off', resolveFromRoot),
  backupTime: timeOfDay('BACKUP_TIME', 'time of day (in TZ) of the daily database backup', '03:30'),
  backupKeepDaily: int('BACKUP_KEEP_DAILY', 'backups kept: the newest of each of this many days', { default: 7, min: 1, max: 3650 }),
  backupKeepWeekly: int('BACKUP_KEEP_WEEKLY', 'and the newest of each of this many weeks', { default: 4, min: 0, max: 520 }),
  backupFormat: oneOf('BACKUP_FORMAT', "auto: pg_dump's custom format when a pg_dump of the server's major version or newer is on the PATH, else Wombat's own; wombat; pg_dump", BACKUP_FORMATS, {
    default: 'auto',
  }),
};
