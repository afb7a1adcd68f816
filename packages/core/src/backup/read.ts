import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { AppError } from '../platform/errors.ts';
import { decompressor, formatOf, FORMAT_VERSION, MAGIC, type BackupHeader, type BackupTable } from './format.ts';
import { BackupReader } from './stream-io.ts';

async function firstBytes(file: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new AppError('backup_not_found', `no backup file ${file}`);
    throw err;
  }
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function backupFormatOf(file: string): Promise<ReturnType<typeof formatOf>> {
  return formatOf(file, await firstBytes(file));
}

/** A Wombat-format backup opened for reading: its header read, positioned at the first table. */
export interface OpenedBackup {
  header: BackupHeader;
  /** Each table in turn, with its rows as COPY text data; the reader checks the row counts. */
  tables(): AsyncGenerator<{ table: BackupTable; data: AsyncGenerator<Buffer>; rows: () => number }>;
  close(): void;
}

export async function openWombatBackup(file: string): Promise<OpenedBackup> {
  const { format, compression } = await backupFormatOf(file);
  if (format !== 'wombat' || !compression) throw new AppError('backup_wrong_format', `${file} is a pg_dump file, not Wombat's own format`);
  const raw = createReadStream(file);
  const stream = raw.pipe(decompressor(compression));
  raw.on('error', (err) => stream.destroy(err));
  const reader = new BackupReader(stream);
  const fail = (why: string) => new AppError('backup_unreadable', `${file} is not a readable Wombat backup: ${why}`);
  let header: BackupHeader;
  try {
    const magic = await reader.line(256);
    const m = magic === undefined ? null : new RegExp(`^${MAGIC} (\\d+)$`).exec(magic);
    if (!m) throw fail('it does not start with the line "WOMBAT-BACKUP <version>"');
    if (Number(m[1]) > FORMAT_VERSION) throw new AppError('backup_too_new', `${file} is in backup format ${m[1]}; this Wombat reads format ${FORMAT_VERSION} and older: use a newer Wombat`);
    const line = await reader.line();
    header = JSON.parse(line ?? 'null') as BackupHeader;
    if (header?.format !== 'wombat' || !Array.isArray(header.tables)) throw fail('its header is missing or damaged');
  } catch (err) {
    stream.destroy();
    if (err instanceof AppError) throw err;
    throw fail((err as Error).message);
  }
  return {
    header,
    async *tables() {
      for (const table of header.tables) {
        const line = await reader.line();
        const expected = `TABLE ${JSON.stringify({ schema: table.schema, name: table.name })}`;
        if (line !== expected) throw fail(`expected the rows of ${table.schema}.${table.name}, found ${JSON.stringify(line?.slice(0, 80))}`);
        let done = false;
        const data = (async function* () {
          yield* reader.copyData();
          done = true;
          if (reader.rows !== table.rows) throw fail(`${table.schema}.${table.name} has ${reader.rows} rows where its header says ${table.rows}`);
        })();
        yield { table, data, rows: () => reader.rows };
        // A consumer that skipped the data: read it through, to reach the next table.
        if (!done) for await (const chunk of data) void chunk;
      }
      if ((await reader.line()) !== 'END') throw fail('its end marker is missing (the file is truncated)');
    },
    close: () => stream.destroy(),
  };
}

/** Reads a whole Wombat-format backup: every table's rows counted against its header. */
export async function readThrough(file: string): Promise<BackupHeader> {
  const b = await openWombatBackup(file);
  try {
    for await (const { data } of b.tables()) for await (const chunk of data) void chunk;
    return b.header;
  } finally {
    b.close();
  }
}
