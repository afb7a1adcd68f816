import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Exchange, Timeframe } from '@wombat/core/jobs';
import { candlesFromColumns, emptyColumns, mergeColumns, type Columns } from '../parquet-columns.ts';
import { parquetPath, readColumns, writeCandlesParquet, type SeriesKey } from '../parquet-store.ts';
import type { Candle } from '../candle.ts';
import type { FileLockOptions } from '../file-lock.ts';
import { findLegacyFiles, parseLegacyPath, type LegacyFile, type SkippedFile } from './legacy-layout.ts';
import { readLegacyParquet } from './legacy-read.ts';

/**
 * `wombat import parquet`: the replaced pipeline's candle files merged into
 * Wombat's layout through the collectors' own writer (the same merge, file lock and
 * atomic replace as a collection), so an import running beside the workers loses
 * none of their rows and they none of its. Source files are only read.
 *
 * The figures come from comparing each file with what is stored before the write;
 * the write itself merges again under the file's lock, so a row a worker stores in
 * between is still never duplicated.
 */
export interface ImportOptions {
  dir: string;
  dataRoot: string;
  exchange: Exchange;
  /** Compare and report only: nothing is written, no folder or lock is made. */
  dryRun?: boolean;
  /** On a conflict the imported candle replaces the stored one (default: the stored one stays). */
  preferImport?: boolean;
  /** Files larger than this are refused (read whole into memory). */
  maxFileBytes?: number;
  lock?: FileLockOptions;
  /** Stops between files (and while waiting for a lock, with lock.signal); a file being written is finished first. */
  signal?: AbortSignal;
  /** Called once per file when it is done (for a progress line). */
  onFile?(file: FileOutcome, index: number, total: number): void;
}

export const IMPORT_MAX_FILE_BYTES = 256 * 1024 * 1024;

export interface FileOutcome {
  file: string;
  /** Why the file was not imported; absent when it was. */
  refused?: string;
  market?: string;
  timeframe?: Timeframe;
  rows?: number;
}

export interface SeriesOutcome {
  market: string;
  timeframe: Timeframe;
  files: number;
  /** Candles not stored before. */
  added: number;
  /** Candles stored with the same values. */
  present: number;
  /** Candles stored with other values. */
  conflicting: number;
  /** Whose values a conflicting candle keeps. */
  winner: 'stored' | 'import';
  /** Some file had no quote volume: its new candles hold 0 there, and quote volume was not compared. */
  noQuoteVolume: boolean;
}

export interface ImportReport {
  dryRun: boolean;
  files: FileOutcome[];
  series: SeriesOutcome[];
  /** Entries passed over (links out of the directory, unreadable folders). */
  skipped: SkippedFile[];
  /** More .parquet files than one import takes; the rest were not looked at. */
  truncated: boolean;
  refused: number;
}

const VALUE_COLS = ['open', 'high', 'low', 'close', 'volume', 'quoteVolume'] as const;

interface Classified {
  added: number;
  present: number;
  conflicting: number;
  /** The rows the write must carry (new ones, and with preferImport the conflicting ones). */
  write: Columns;
}

/** Compares sorted incoming rows with the sorted stored ones. */
function classify(stored: Columns, incoming: Columns, preferImport: boolean, noQuoteVolume: boolean): Classified {
  const keep: number[] = [];
  let added = 0;
  let present = 0;
  let conflicting = 0;
  let s = 0;
  const compared = noQuoteVolume ? VALUE_COLS.filter((c) => c !== 'quoteVolume') : VALUE_COLS;
  const write = { ...incoming, quoteVolume: incoming.quoteVolume.slice() };
  for (let i = 0; i < incoming.time.length; i++) {
    const t = incoming.time[i]!;
    while (s < stored.time.length && stored.time[s]! < t) s++;
    if (s >= stored.time.length || stored.time[s] !== t) {
      added++;
      keep.push(i);
    } else if (compared.every((c) => stored[c][s] === incoming[c][i])) {
      present++;
    } else {
      conflicting++;
      if (preferImport) {
        // A file without quote volume does not wipe the stored one.
        if (noQuoteVolume) write.quoteVolume[i] = stored.quoteVolume[s]!;
        keep.push(i);
      }
    }
  }
  const pickRows = (a: Float64Array) => Float64Array.from(keep, (i) => a[i]!);
  return {
    added,
    present,
    conflicting,
    write: { time: pickRows(write.time), open: pickRows(write.open), high: pickRows(write.high), low: pickRows(write.low), close: pickRows(write.close), volume: pickRows(write.volume), quoteVolume: pickRows(write.quoteVolume) },
  };
}

/**
 * The writer's merge: stored rows win, or with preferImport an overwrite over an empty range,
 * where incoming values replace stored ones at equal times and no stored row is dropped.
 */
const mergeMode = (preferImport: boolean) => (preferImport ? { overwrite: true, rangeFrom: 0, rangeTo: 0 } : { overwrite: false });

const yearOf = (ms: number) => new Date(ms).getUTCFullYear();

/** Rows of `c` in UTC year `y` (c is sorted). */
function yearSlice(c: Columns, y: number): Columns {
  const from = Date.UTC(y, 0, 1);
  const to = Date.UTC(y + 1, 0, 1);
  let a = 0;
  while (a < c.time.length && c.time[a]! < from) a++;
  let b = a;
  while (b < c.time.length && c.time[b]! < to) b++;
  return { time: c.time.subarray(a, b), open: c.open.subarray(a, b), high: c.high.subarray(a, b), low: c.low.subarray(a, b), close: c.close.subarray(a, b), volume: c.volume.subarray(a, b), quoteVolume: c.quoteVolume.subarray(a, b) };
}

export async function importLegacyParquet(opts: ImportOptions): Promise<ImportReport> {
  const dataRoot = path.resolve(opts.dataRoot);
  const maxFileBytes = opts.maxFileBytes ?? IMPORT_MAX_FILE_BYTES;
  const preferImport = opts.preferImport === true;
  const dryRun = opts.dryRun === true;
  // Wombat's own files may live under the same root (DATA_ROOT=./data beside the old data/KRW-BTC/...).
  const found = await findLegacyFiles(opts.dir, { exclude: [path.join(dataRoot, opts.exchange)] });
  const planned: { f: LegacyFile; place?: ReturnType<typeof parseLegacyPath> }[] = found.files.map((f) => ({ f, place: parseLegacyPath(f.relative) }));
  // Series by series, a series' files by year: files of one target file (1h/ and 1H/ folders) come together.
  const sortKey = (p: (typeof planned)[number]) => (p.place?.ok ? `${p.place.place.symbol}\u0000${p.place.place.timeframe}\u0000${p.place.place.year}\u0000${p.f.relative}` : `\u0001${p.f.relative}`);
  planned.sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1));

  const files: FileOutcome[] = [];
  const series = new Map<string, SeriesOutcome>();
  // Stored year files as this import leaves them (dry run: as it would), for the next file of the same target.
  let cache = new Map<string, Columns>();
  for (const [index, { f, place }] of planned.entries()) {
    opts.signal?.throwIfAborted();
    const outcome: FileOutcome = { file: f.relative };
    files.push(outcome);
    const done = () => opts.onFile?.(outcome, index, planned.length);
    if (!place?.ok) {
      outcome.refused = place?.reason ?? 'not in the layout';
      done();
      continue;
    }
    const { symbol, timeframe } = place.place;
    Object.assign(outcome, { market: symbol, timeframe });
    if (f.bytes > maxFileBytes) {
      outcome.refused = `${f.bytes} bytes, larger than the ${Math.round(maxFileBytes / 1_048_576)} MiB an import reads`;
      done();
      continue;
    }
    const read = readLegacyParquet(await readFile(f.file), timeframe);
    if (!read.ok) {
      outcome.refused = read.reason;
      done();
      continue;
    }
    const { columns, noQuoteVolume } = read.value;
    outcome.rows = columns.time.length;
    const key: SeriesKey = { exchange: opts.exchange, symbol, timeframe };
    const label = `${symbol}\u0000${timeframe}`;
    let s = series.get(label);
    if (!s) series.set(label, (s = { market: symbol, timeframe, files: 0, added: 0, present: 0, conflicting: 0, winner: preferImport ? 'import' : 'stored', noQuoteVolume: false }));
    s.files++;
    s.noQuoteVolume ||= noQuoteVolume;
    const targets = new Set<string>();
    const n = columns.time.length;
    if (n > 0) for (let y = yearOf(columns.time[0]!); y <= yearOf(columns.time[n - 1]!); y++) targets.add(parquetPath(dataRoot, key, y));
    cache = new Map([...cache].filter(([k]) => targets.has(k)));
    let toWrite: Candle[] = [];
    for (const target of targets) {
      const y = Number(path.basename(target, '.parquet'));
      const incoming = yearSlice(columns, y);
      if (incoming.time.length === 0) continue;
      const stored = cache.get(target) ?? (await readColumns(target)) ?? emptyColumns();
      const c = classify(stored, incoming, preferImport, noQuoteVolume);
      s.added += c.added;
      s.present += c.present;
      s.conflicting += c.conflicting;
      // What the target holds after this file, for a later file of the same target (the writer's own merge).
      cache.set(target, mergeColumns(stored, c.write, mergeMode(preferImport)).merged);
      // concat, not push(...): a year of 1m candles is more arguments than a call takes.
      toWrite = toWrite.concat(candlesFromColumns(c.write));
    }
    if (!dryRun && toWrite.length > 0) {
      await writeCandlesParquet(dataRoot, key, toWrite, { ...mergeMode(preferImport), ...(opts.lock ? { lock: opts.lock } : {}) });
    }
    done();
  }
  return {
    dryRun,
    files,
    series: [...series.values()],
    skipped: found.skipped,
    truncated: found.truncated,
    refused: files.filter((f) => f.refused !== undefined).length,
  };
}
