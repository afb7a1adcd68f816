import { stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { loadConfig, resolveFromRoot } from '@wombat/core/platform';
import { EXIT, usage, type Act } from '../context.ts';
import { json, table } from '../output.ts';

/**
 * `wombat import parquet <dir>`: the replaced pipeline's candle files
 * (`<dir>/<MARKET>/<timeframe>/<year>.parquet`) merged into DATA_ROOT by the
 * collectors' writer. The logic is `importLegacyParquet` in @wombat/collectors.
 */
export function registerImport(program: Command, act: Act): void {
  const imp = program.command('import').description('bring data of the replaced pipeline into Wombat');
  imp
    .command('parquet')
    .description('merge old candle files <dir>/<MARKET>/<timeframe>/<year>.parquet into DATA_ROOT, as the collectors write them')
    .argument('<dir>', 'folder of the old files (searched below; links out of it are not followed)')
    .addOption(new Option('--exchange <exchange>', 'exchange of the markets').choices(['upbit']).default('upbit'))
    .option('--dry-run', 'compare and report only: nothing is written')
    .option('--prefer-import', 'where a candle is stored with other values, the imported one replaces it (default: the stored one stays)')
    .addHelpText(
      'after',
      `
Reads timestamp/datetime/date/candle_date_time_utc or the pandas index (Arrow timestamps, epoch
s/ms/µs/ns, ISO text; no offset means UTC) and open/high/low/close/volume or Upbit's
opening_price/high_price/low_price/trade_price/candle_acc_trade_volume. A file it cannot take
whole (unreadable, a missing column, an unknown timeframe, rows out of order or repeated, bad
prices, over 256 MiB) is refused with one line on stderr; the others are still imported, and
the exit code is then 1. Source files are only read; a second import adds nothing.`,
    )
    .action(
      act(async (ctx, dir: string, opts: { exchange: 'upbit'; dryRun?: boolean; preferImport?: boolean }) => {
        // Loaded here only: the other commands start faster without the collectors.
        const { collectorFields, importLegacyParquet } = await import('@wombat/collectors');
        const config = loadConfig({ dataRoot: collectorFields.dataRoot, storage: collectorFields.storage }, ctx.env);
        const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
        if (!isDir) throw usage(`${dir} is not a folder: name the folder that holds <MARKET>/<timeframe>/<year>.parquet`);
        const dataRoot = resolveFromRoot(config.dataRoot);
        if (config.storage === 'postgres') ctx.err(`wombat: STORAGE=postgres: the collectors read candles from PostgreSQL, which this import does not fill`);
        const report = await importLegacyParquet({
          dir,
          dataRoot,
          exchange: opts.exchange,
          dryRun: opts.dryRun === true,
          preferImport: opts.preferImport === true,
          signal: ctx.signal,
          lock: { signal: ctx.signal },
          onFile: (f, i, total) => ctx.log.info({ file: f.file, refused: f.refused, rows: f.rows }, `file ${i + 1}/${total}`),
        });
        for (const f of report.files) if (f.refused !== undefined) ctx.err(`refused ${f.file}: ${f.refused}`);
        for (const s of report.skipped) ctx.err(`skipped ${s.relative}: ${s.reason}`);
        if (report.truncated) ctx.err(`wombat: stopped after ${report.files.length} files: import the rest folder by folder`);
        if (ctx.opts.json) {
          const series = report.series.map((s) => ({ market: s.market, timeframe: s.timeframe, files: s.files, added: s.added, present: s.present, conflicting: s.conflicting, winner: s.winner, no_quote_volume: s.noQuoteVolume }));
          ctx.out(json({ dry_run: report.dryRun, data_root: dataRoot, series, files: report.files, skipped: report.skipped, truncated: report.truncated, refused: report.refused }));
        } else {
          if (report.series.length > 0) {
            ctx.out(
              table(
                ['market', 'timeframe', 'files', 'added', 'present', 'conflicting', 'conflict winner'],
                report.series.map((s) => [s.market, s.timeframe, s.files, s.added, s.present, s.conflicting, s.winner]),
              ),
            );
          }
          const taken = report.files.length - report.refused;
          ctx.out(`${report.dryRun ? 'dry run, nothing written: ' : ''}${taken} file${taken === 1 ? '' : 's'} ${report.dryRun ? 'compared with' : 'merged into'} ${dataRoot}, ${report.refused} refused`);
          if (report.series.some((s) => s.noQuoteVolume)) ctx.out('files without quote volume: their new candles hold 0 there');
        }
        return report.refused > 0 || report.truncated ? EXIT.failed : EXIT.ok;
      }),
    );
}
