/**
 * Database backups and restore: the daily backup job's body, Wombat's own backup format
 * (for servers without a compatible pg_dump, such as the embedded one), pg_dump's custom
 * format where one fits, retention, verification and restore. Stands on the platform and
 * the migrations only. Import as `@wombat/core/backup`.
 */
export { backupFields, BACKUP_FORMATS, type BackupFormatSetting } from './config.ts';
export { backupDatabase, chooseFormat, restoreBackup, verifyBackup, type BackupOptions, type BackupResult, type VerifyResult } from './run.ts';
export { backupsToKeep, listBackupFiles, type BackupFile, type ChecksumState } from './files.ts';
export { backupFileName, type BackupFormat, type BackupHeader } from './format.ts';
export type { RestoreResult } from './restore.ts';
