import type { Writable } from 'node:stream';
import type { TransactionSql } from 'postgres';
import { pipeline } from 'node:stream/promises';
import { createSql } from '../platform/db.ts';
import { BOSS_SCHEMA } from '../platform/boss.ts';
import { compressor, FORMAT_VERSION, MAGIC, quoteIdent, tableRef, type BackupHeader, type BackupSequence, type BackupTable, type Compression } from './format.ts';
import { writeTo } from './stream-io.ts';

/** Every schema Wombat keeps data in: its own tables (core and collectors) and pg-boss's. */
export const WOMBAT_SCHEMAS = ['wombat', BOSS_SCHEMA] as const;

export type Tx = TransactionSql;

/** Settings that make COPY's text the same whatever the server's or the role's defaults. */
export async function stableOutput(tx: Tx): Promise<void> {
  await tx`set local datestyle = 'ISO, YMD'`;
  await tx`set local timezone = 'UTC'`;
  await tx`set local intervalstyle = 'postgres'`;
  await tx`set local extra_float_digits = 3`;
  await tx`set local bytea_output = 'hex'`;
}

/** The tables of Wombat's schemas: partitions are reached through their parent. */
export async function wombatTables(tx: Tx): Promise<{ schema: string; name: string; columns: string[] }[]> {
  const rows = await tx<{ schema: string; name: string; columns: string[] }[]>`
    select n.nspname as schema, c.relname as name,
           array(select a.attname::text from pg_attribute a
                 where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated = ''
                 order by a.attnum) as columns
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ${tx([...WOMBAT_SCHEMAS])} and c.relkind in ('r', 'p') and not c.relispartition
    order by n.nspname desc, c.relname`;
  return rows.map((r) => ({ schema: r.schema, name: r.name, columns: [...r.columns] }));
}

async function sequencesOf(tx: Tx): Promise<BackupSequence[]> {
  const seqs = await tx<{ schema: string; name: string }[]>`
    select n.nspname as schema, c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ${tx([...WOMBAT_SCHEMAS])} and c.relkind = 'S' order by 1, 2`;
  const out: BackupSequence[] = [];
  for (const s of seqs) {
    const [v] = await tx.unsafe<{ last_value: number; is_called: boolean }[]>(`select last_value, is_called from ${tableRef(s)}`);
    out.push({ ...s, lastValue: Number(v!.last_value), isCalled: v!.is_called });
  }
  return out;
}

export interface DumpResult {
  header: BackupHeader;
}

/**
 * Writes Wombat's own backup format (see format.ts) of the database at `url` to `out`:
 * every table of Wombat's schemas through COPY ... TO STDOUT, all in one repeatable-read,
 * read-only snapshot (`snapshot`: one exported by another session), streamed through the
 * compressor a chunk at a time.
 */
export async function dumpWombat(opts: { url: string; out: Writable; compression: Compression; now?: () => Date; snapshot?: string; signal?: AbortSignal }): Promise<DumpResult> {
  // No deadline: a large database takes as long as it takes; the snapshot holds no locks that block writers.
  const sql = createSql({ url: opts.url, poolSize: 1, applicationName: 'wombat-backup', statementTimeoutMs: 0, transactionTimeoutMs: 0, connectTimeoutMs: 10_000 });
  const z = compressor(opts.compression);
  const written = pipeline(z, opts.out);
  // Fails as soon as the file side fails (disk full), without waiting for the next write.
  written.catch(() => {});
  try {
    const header = await sql.begin('isolation level repeatable read read only', async (tx) => {
      // Another session's exported snapshot (pg_export_snapshot()): this backup is exactly what it sees.
      if (opts.snapshot) await tx.unsafe(`set transaction snapshot '${opts.snapshot.replaceAll("'", "''")}'`);
      await stableOutput(tx);
      const tables = await wombatTables(tx);
      const counted: BackupTable[] = [];
      for (const t of tables) {
        const [c] = await tx.unsafe<{ n: number }[]>(`select count(*) as n from ${tableRef(t)}`);
        counted.push({ ...t, rows: Number(c!.n) });
      }
      const [server] = await tx<{ v: string; num: number }[]>`select current_setting('server_version') as v, current_setting('server_version_num')::int as num`;
      const [migration] = await tx<{ v: number | null }[]>`select max(version) as v from wombat.schema_migrations`;
      const hasBoss = tables.some((t) => t.schema === BOSS_SCHEMA && t.name === 'version');
      const boss = hasBoss ? await tx.unsafe<{ version: number }[]>(`select version from ${quoteIdent(BOSS_SCHEMA)}.version limit 1`) : [];
      const header: BackupHeader = {
        format: 'wombat',
        formatVersion: FORMAT_VERSION,
        migrationVersion: migration?.v ?? 0,
        bossVersion: boss[0] ? Number(boss[0].version) : null,
        createdAt: (opts.now?.() ?? new Date()).toISOString(),
        serverVersion: server!.v,
        serverVersionNum: server!.num,
        compression: opts.compression,
        tables: counted,
        sequences: await sequencesOf(tx),
      };
      await writeTo(z, `${MAGIC} ${FORMAT_VERSION}\n${JSON.stringify(header)}\n`);
      for (const t of counted) {
        await writeTo(z, `TABLE ${JSON.stringify({ schema: t.schema, name: t.name })}\n`);
        const cols = t.columns.map(quoteIdent).join(', ');
        opts.signal?.throwIfAborted();
        const data = await tx.unsafe(`copy (select ${cols} from ${tableRef(t)}) to stdout`).readable();
        for await (const chunk of data) {
          if (opts.signal?.aborted) {
            // Ending the COPY early: the connection is closed with the pool below.
            data.destroy();
            opts.signal.throwIfAborted();
          }
          await writeTo(z, chunk as Buffer);
        }
        await writeTo(z, '\\.\n');
      }
      await writeTo(z, 'END\n');
      return header;
    });
    z.end();
    await written;
    return { header };
  } catch (err) {
    z.destroy(err as Error);
    await written.catch(() => {});
    throw err;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
