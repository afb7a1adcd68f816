import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '@wombat/core/platform';
import type { Exchange, Timeframe } from '@wombat/core/jobs';
import type { Candle } from './candle.ts';
import { withFileLock, type FileLockOptions } from './file-lock.ts';
import { appendParquet, footerLastTime } from './parquet-append.ts';
import { candlesFromColumns, columnsFromCandles, decodeParquet, emptyColumns, encodeParquet, mergeColumns, type Columns } from './parquet-columns.ts';

export { decodeParquet, emptyColumns, encodeParquet, mergeColumns, type Columns } from './parquet-columns.ts';

/**
 * Candle files: DATA_ROOT/<exchange>/<symbol>/<timeframe>/<year>.parquet, one row
 * per candle (time = start, UTC, ms), sorted, no duplicates. Every write takes
 * the file's cross-process lock, merges with what is stored (rows after the
 * file's end are appended as new row groups, see parquet-append.ts), and replaces
 * the file atomically (temp file, fsync, rename, fsync of the directory), so a
 * reader or a killed writer never sees a partial file.
 */
export interface SeriesKey {
  exchange: Exchange;
  symbol: string;
  timeframe: Timeframe;
}

export function seriesDir(dataRoot: string, key: SeriesKey): string {
  if (!/^[A-Za-z0-9._-]+$/.test(key.symbol) || /^\.+$/.test(key.symbol)) throw new ValidationError([`symbol "${key.symbol}" cannot be used as a file name`]);
  return path.join(dataRoot, key.exchange, key.symbol, key.timeframe);
}

export function parquetPath(dataRoot: string, key: SeriesKey, year: number): string {
  return path.join(seriesDir(dataRoot, key), `${year}.parquet`);
}

async function readBytes(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function readColumns(file: string): Promise<Columns | undefined> {
  const bytes = await readBytes(file);
  return bytes && decodeParquet(bytes, file);
}

/** Replaces `file` with `bytes` so that readers see the old or the new file, never a mix. */
export async function atomicWrite(file: string, bytes: Uint8Array, beforeRename?: () => Promise<void>): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await beforeRename?.();
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  // The rename is durable only once the directory entry is.
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export interface WriteOptions {
  overwrite: boolean;
  /** With overwrite: the range the incoming candles cover (start times, ms). */
  rangeFrom?: number;
  rangeTo?: number;
  lock?: FileLockOptions;
}

/** Merges candles into their year files; returns the rows inserted or changed. */
export async function writeCandlesParquet(dataRoot: string, key: SeriesKey, candles: Candle[], opts: WriteOptions): Promise<{ written: number; files: string[] }> {
  const byYear = new Map<number, Candle[]>();
  for (const c of candles) {
    const y = c.time.getUTCFullYear();
    let list = byYear.get(y);
    if (!list) byYear.set(y, (list = []));
    list.push(c);
  }
  if (opts.overwrite && opts.rangeFrom !== undefined && opts.rangeTo !== undefined) {
    // Years the range covers but where the exchange returned nothing still lose their old rows.
    for (let y = new Date(opts.rangeFrom).getUTCFullYear(); y <= new Date(opts.rangeTo - 1).getUTCFullYear(); y++) if (!byYear.has(y)) byYear.set(y, []);
  }
  let written = 0;
  const files: string[] = [];
  for (const [year, list] of [...byYear].sort((a, b) => a[0] - b[0])) {
    const file = parquetPath(dataRoot, key, year);
    await mkdir(path.dirname(file), { recursive: true });
    written += await withFileLock(
      file,
      async (lock) => {
        await removeDeadTempFiles(file);
        const bytes = await readBytes(file);
        const incoming = columnsFromCandles(list);
        // Right before the rename, the last moment to find the lock taken over: then nothing
        // replaces the file and the merge starts again.
        const replace = async (next: Uint8Array) => {
          await atomicWrite(file, next, () => lock.assertHeld());
          files.push(file);
        };
        // Rows after the file's end (the daily collection): the stored row groups are kept as they are.
        const appended = bytes && appendParquet(bytes, incoming, opts);
        if (appended) {
          await replace(appended.bytes);
          return appended.written;
        }
        const r = mergeColumns(bytes ? decodeParquet(bytes, file) : emptyColumns(), incoming, opts);
        if (r.written === 0 && r.removed === 0) return 0;
        await replace(encodeParquet(r.merged));
        return r.written;
      },
      opts.lock,
    );
  }
  return { written, files };
}

/** Temp files of writers that died mid-write (SIGKILL); called under the file's lock. */
async function removeDeadTempFiles(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.`;
  for (const f of await readdir(dir)) {
    const pid = f.startsWith(prefix) && f.endsWith('.tmp') ? Number(f.slice(prefix.length).split('.')[0]) : NaN;
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') await unlink(path.join(dir, f)).catch(() => {});
    }
  }
}

async function storedYears(dataRoot: string, key: SeriesKey): Promise<number[]> {
  try {
    return (await readdir(seriesDir(dataRoot, key)))
      .map((f) => /^(\d{4})\.parquet$/.exec(f)?.[1])
      .filter((y): y is string => y !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function readCandlesParquet(dataRoot: string, key: SeriesKey, from: Date, to: Date): Promise<Candle[]> {
  const out: Candle[] = [];
  for (const year of await storedYears(dataRoot, key)) {
    if (year < from.getUTCFullYear() || year > to.getUTCFullYear()) continue;
    const c = await readColumns(parquetPath(dataRoot, key, year));
    // A loop, not push(...): a year of 1m candles is more arguments than a call takes.
    if (c) for (const candle of candlesFromColumns(c, from.getTime(), to.getTime())) out.push(candle);
  }
  return out;
}

/** Start of the newest stored candle, if any: from the year file's footer statistics, or by decoding it when they are missing. */
export async function lastStoredParquet(dataRoot: string, key: SeriesKey): Promise<Date | undefined> {
  const years = await storedYears(dataRoot, key);
  for (const year of years.reverse()) {
    const file = parquetPath(dataRoot, key, year);
    const bytes = await readBytes(file);
    if (!bytes) continue;
    const last = footerLastTime(bytes);
    if (last !== undefined) return new Date(last);
    const c = decodeParquet(bytes, file);
    if (c.time.length > 0) return new Date(c.time[c.time.length - 1]!);
  }
  return undefined;
}
