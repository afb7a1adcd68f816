import type { Command } from 'commander';
import { loadConfig, resolveFromRoot } from '@wombat/core/platform';
import { EXIT, usage, type Act } from '../context.ts';
import { json, shortTime, table } from '../output.ts';

const mib = (b: number) => `${(b / 1_048_576).toFixed(1)}MB`;

export function registerSnapshot(program: Command, act: Act): void {
  const snapshot = program
    .command('snapshot')
    .description('dated snapshots of DATA_ROOT in SNAPSHOT_DIR (hard links of the Parquet files); take one now with: wombat run data-snapshot');
  snapshot
    .command('list')
    .description('the snapshots in SNAPSHOT_DIR, newest first: time, files, size, linked or copied')
    .action(
      act(async (ctx) => {
        // Loaded only here: the other commands start faster without the collectors.
        const { listSnapshots, snapshotFields } = await import('@wombat/collectors');
        const { snapshotDir } = loadConfig({ snapshotDir: snapshotFields.snapshotDir }, ctx.env);
        if (!snapshotDir) throw usage('SNAPSHOT_DIR is not set: set it to the directory the data-snapshot job writes to');
        const snapshots = await listSnapshots(resolveFromRoot(snapshotDir));
        if (ctx.opts.json) ctx.out(json({ snapshot_dir: resolveFromRoot(snapshotDir), snapshots }));
        else if (snapshots.length === 0) ctx.out(`no snapshot in ${resolveFromRoot(snapshotDir)} yet (wombat run data-snapshot takes one)`);
        else ctx.out(table(['name', 'taken', 'files', 'size', 'linked', 'copied', 'path'], snapshots.map((s) => [s.name, shortTime(s.taken_at), s.files, mib(s.bytes), s.linked, s.copied, s.path])));
        return EXIT.ok;
      }),
    );
}
