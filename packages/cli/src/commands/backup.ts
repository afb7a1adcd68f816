import { backupDatabase, backupFields, BACKUP_FORMATS, listBackupFiles, restoreBackup, verifyBackup, type BackupFormatSetting } from '@wombat/core/backup';
import { loadConfig, parsePostgresUrl, redactUrl } from '@wombat/core/platform';
import { Option, type Command } from 'commander';
import { EXIT, usage, type Act, type CliContext } from '../context.ts';
import { duration, fields, json, shortTime, table } from '../output.ts';

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes}B`;
  if (bytes < 1_048_576) return `${(bytes / 1024).toFixed(1)}KiB`;
  if (bytes < 1_073_741_824) return `${(bytes / 1_048_576).toFixed(1)}MiB`;
  return `${(bytes / 1_073_741_824).toFixed(2)}GiB`;
}

function backupConfig(ctx: CliContext, dir: string | undefined) {
  const config = loadConfig(backupFields, ctx.env);
  const chosen = dir ?? config.backupDir;
  if (!chosen) throw usage('no backup directory: set BACKUP_DIR or give --dir <directory>');
  return { ...config, backupDir: chosen };
}

const tableRows = (tables: { schema: string; name: string; rows: number }[]) => table(['table', 'rows'], tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));

export function registerBackup(program: Command, act: Act): void {
  const backup = program.command('backup').description('database backups: take one now, list them, verify one (the engine takes one daily when BACKUP_DIR is set)');

  backup
    .command('now')
    .description('back up the database now, into BACKUP_DIR (or --dir), then apply retention')
    .option('--dir <directory>', 'where the backup goes (default BACKUP_DIR)')
    .addOption(new Option('--format <format>', 'auto (pg_dump when a compatible one is on the PATH), wombat or pg_dump (default BACKUP_FORMAT)').choices(BACKUP_FORMATS))
    .action(
      act(async (ctx, opts: { dir?: string; format?: BackupFormatSetting }) => {
        const config = backupConfig(ctx, opts.dir);
        const { url } = await ctx.database();
        const result = await backupDatabase({ url, dir: config.backupDir, format: opts.format ?? config.backupFormat, keepDaily: config.backupKeepDaily, keepWeekly: config.backupKeepWeekly, log: ctx.log });
        if (ctx.opts.json) ctx.out(json(result));
        else {
          ctx.out(
            fields([
              ['file', result.file],
              ['format', `${result.format} (${result.reason})`],
              ['size', size(result.bytes)],
              ['took', duration(result.durationMs)],
              ['tables', result.tables],
              ['rows', result.rows],
              ['removed', result.removed.join(', ')],
            ]),
          );
        }
        return EXIT.ok;
      }),
    );

  backup
    .command('list', { isDefault: true })
    .description('the backups in BACKUP_DIR (or --dir), newest first, each checked against its checksum file')
    .option('--dir <directory>', 'the backup directory (default BACKUP_DIR)')
    .action(
      act(async (ctx, opts: { dir?: string }) => {
        const config = backupConfig(ctx, opts.dir);
        const files = await listBackupFiles(config.backupDir, { checksums: true });
        if (ctx.opts.json) ctx.out(json({ backups: files.map((f) => ({ ...f, at: f.at.toISOString() })) }));
        else {
          ctx.out(table(['file', 'time', 'size', 'format', 'checksum'], files.map((f) => [f.name, shortTime(f.at), size(f.bytes), f.format, f.checksum])));
          ctx.out(`${files.length} backup(s) in ${config.backupDir}`);
        }
        return files.some((f) => f.checksum === 'mismatch') ? EXIT.failed : EXIT.ok;
      }),
    );

  backup
    .command('verify <file>')
    .description("check a backup: its checksum, then (Wombat's format) that it reads through with the rows its header says")
    .action(
      act(async (ctx, file: string) => {
        const v = await verifyBackup(file);
        if (ctx.opts.json) ctx.out(json(v));
        else {
          const h = v.header;
          ctx.out(
            fields([
              ['file', v.file],
              ['format', v.format],
              ['checksum', v.checksum === 'ok' ? 'ok' : 'missing (no .sha256 beside the file)'],
              ['created', h ? shortTime(h.createdAt) : null],
              ['server', h?.serverVersion],
              ['migration', h?.migrationVersion],
            ]),
          );
          if (h) ctx.out(tableRows(h.tables));
        }
        return v.checksum === 'ok' ? EXIT.ok : EXIT.failed;
      }),
    );
}

export function registerRestore(program: Command, act: Act): void {
  program
    .command('restore <file>')
    .description('restore a backup into an empty database: schema by the migrations, then the rows; refuses a damaged file')
    .requiredOption('--into <url>', 'PostgreSQL URL of the database to restore into (empty, unless --force)')
    .option('--force', "restore over a database that has tables (Wombat's schemas there are dropped first), or without a checksum file")
    .action(
      act(async (ctx, file: string, opts: { into: string; force?: boolean }) => {
        let url: string;
        try {
          url = parsePostgresUrl(opts.into);
        } catch (err) {
          throw usage(`--into: ${(err as Error).message}`);
        }
        const r = await restoreBackup({ file, url, log: ctx.log, force: opts.force === true });
        if (ctx.opts.json) ctx.out(json(r));
        else {
          ctx.out(`restored ${file} into ${redactUrl(url)}${r.migratedForward.length > 0 ? `, then migrated forward: ${r.migratedForward.join(', ')}` : ''}`);
          ctx.out(tableRows(r.tables));
        }
        return EXIT.ok;
      }),
    );
}
