import t from 'tap';
import { sql } from 'kysely';
import { ACTIVE_RUN_STATES, RUN_STATES, RUN_TRIGGERS } from '@wombat/core/runs';
import { createTestDatabase, type TestDatabase } from '@wombat/core/testing';

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
  t.same([...ACTIVE_RUN_STATES], ['waiting', 'held', 'queued', 'running', 'retrying']);
  const index = await sql<{ def: string }>`select indexdef as def from pg_indexes where schemaname = 'wombat' and indexname = 'runs_active'`.execute(tdb.db);
  t.same([...index.rows[0]!.def.matchAll(/'([a-z_-]+)'::text/g)].map((m) => m[1]), [...ACTIVE_RUN_STATES], 'the active-runs index covers the active states');
});
