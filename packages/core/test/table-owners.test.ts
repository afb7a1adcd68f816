import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { repoRoot } from '@wombat/core/platform';

/**
 * One owner per table: the module (or, for the run lifecycle, the folder) of the
 * domain that writes it. Everyone else reads.
 */
const OWNERS: Record<string, string> = {
  'wombat.runs': 'packages/core/src/runs/',
  'wombat.superseded_attempts': 'packages/core/src/runs/attempts.ts',
  // and the triggers of migration 0018_run_rollups.sql, which write the deltas
  'wombat.run_counts': 'packages/core/src/runs/run-counts.ts',
  'wombat.run_count_deltas': 'packages/core/src/runs/run-counts.ts',
  'wombat.workers': 'packages/core/src/workers/registry.ts',
  'wombat.schedules': 'packages/core/src/schedules/store.ts',
  'wombat.engines': 'packages/core/src/schedules/engines.ts',
  'wombat.alerts': 'packages/core/src/alerts/store.ts',
  'wombat.alert_deliveries': 'packages/core/src/alerts/store.ts',
  'wombat.alert_counters': 'packages/core/src/alerts/store.ts',
  'wombat.database_size_samples': 'packages/core/src/alerts/store.ts',
};

const SOURCES = ['packages/core/src', 'packages/collectors/src', 'packages/cli/src', 'services/api/src', 'services/scheduler-engine/src', 'services/worker/src'];

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** A Kysely or SQL write of `table`. */
function writes(table: string): RegExp {
  const name = table.replace('.', '\\.');
  return new RegExp(`(insertInto|updateTable|deleteFrom)\\(\\s*'${name}'|(insert\\s+into|update|delete\\s+from)\\s+${name}\\b`, 'i');
}

t.test('each of core\'s tables is written by its owner only', async (t) => {
  const texts = new Map<string, string>();
  for (const dir of SOURCES) {
    for (const file of await sourceFiles(path.join(repoRoot, dir))) texts.set(path.relative(repoRoot, file), await readFile(file, 'utf8'));
  }
  for (const [table, owner] of Object.entries(OWNERS)) {
    const writers = [...texts].filter(([, text]) => writes(table).test(text)).map(([file]) => file);
    t.ok(writers.some((f) => f.startsWith(owner)), `the check finds ${owner} writing ${table}`);
    t.same(writers.filter((f) => !f.startsWith(owner)), [], `no file outside ${owner} writes ${table}`);
  }
});
