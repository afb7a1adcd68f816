import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { ACTIVE_RUN_STATES, RUN_STATES, RUN_TRIGGERS } from '@wombat/core';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';

const root = path.resolve(import.meta.dirname, '../../..');

/** The values of a `check (col in (...))` constraint, as Postgres stores it. */
async function checkValues(tdb: TestDatabase, name: string): Promise<string[]> {
  const r = await sql<{ def: string }>`
    select pg_get_constraintdef(c.oid) as def from pg_constraint c
    join pg_class k on k.oid = c.conrelid join pg_namespace n on n.oid = k.relnamespace
    where n.nspname = 'wombat' and k.relname = 'runs' and c.conname = ${name}`.execute(tdb.db);
  return [...r.rows[0]!.def.matchAll(/'([a-z_-]+)'::text/g)].map((m) => m[1]!);
}

t.test('the database constraints list exactly the run states and triggers of RUN_STATES and RUN_TRIGGERS', async (t) => {
  const tdb = await createTestDatabase(t);
  t.same(await checkValues(tdb, 'runs_state_check'), [...RUN_STATES]);
  t.same(await checkValues(tdb, 'runs_trigger_check'), [...RUN_TRIGGERS]);
  t.same([...ACTIVE_RUN_STATES], ['held', 'queued', 'running', 'retrying']);
  const index = await sql<{ def: string }>`select indexdef as def from pg_indexes where schemaname = 'wombat' and indexname = 'runs_active'`.execute(tdb.db);
  t.same([...index.rows[0]!.def.matchAll(/'([a-z_-]+)'::text/g)].map((m) => m[1]), [...ACTIVE_RUN_STATES], 'the active-runs index covers the active states');
});

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

t.test('only the core run lifecycle writes wombat.runs', async (t) => {
  const dirs = ['packages/core/src', 'packages/collectors/src', 'services/api/src', 'services/scheduler-engine/src', 'services/worker/src'];
  const writes = /(insertInto|updateTable|deleteFrom)\(\s*'wombat\.runs'|(insert\s+into|update|delete\s+from)\s+wombat\.runs\b/i;
  const owners: string[] = [];
  for (const dir of dirs) {
    for (const file of await sourceFiles(path.join(root, dir))) {
      const text = await readFile(file, 'utf8');
      if (writes.test(text)) owners.push(path.relative(root, file));
    }
  }
  t.ok(owners.length > 0, 'the check finds the writers');
  t.same(
    owners.filter((f) => !f.startsWith('packages/core/src/run-lifecycle/')),
    [],
    'no file outside packages/core/src/run-lifecycle writes runs',
  );
});
