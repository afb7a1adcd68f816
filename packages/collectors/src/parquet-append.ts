import { emptyColumns, encodeParquet, mergeColumns, type Columns } from './parquet-columns.ts';
import { field, readStruct, setField, ThriftType as T, writeStruct, type ThriftList, type ThriftStruct } from './parquet-thrift.ts';

/**
 * Appending candles to a year file without re-encoding it. When every new row
 * starts after the file's last row (the daily collection), the new file is the
 * stored file's row groups copied byte for byte, the new rows' row groups
 * (encoded alone, with the same writer settings), their page indexes, and a
 * footer listing all row groups: what a full rewrite holds, but with the year's
 * rows in more row groups.
 *
 * So that files do not decay into many tiny row groups, small files and files
 * that already have MAX_ROW_GROUPS row groups are rewritten whole (by the caller),
 * which packs them into row groups of the writer's full size again. With daily
 * appends of a day of 1-minute candles to a year file, that is one full rewrite
 * every ~60 days; below APPEND_MIN_ROWS a full rewrite is cheap anyway.
 */
export const MAX_ROW_GROUPS = 64;
export const APPEND_MIN_ROWS = 65_536;

const MAGIC = Buffer.from('PAR1');

// Field ids of parquet.thrift (parquet-format).
const FileMetaData = { version: 1, schema: 2, numRows: 3, rowGroups: 4, keyValueMetadata: 5, columnOrders: 7, encryptionAlgorithm: 8, footerSigningKeyMetadata: 9 };
const RowGroup = { columns: 1, numRows: 3, fileOffset: 5, ordinal: 7 };
const ColumnChunk = { filePath: 1, fileOffset: 2, metaData: 3, offsetIndexOffset: 4, offsetIndexLength: 5, columnIndexOffset: 6, columnIndexLength: 7, cryptoMetadata: 8, encryptedColumnMetadata: 9 };
const ColumnMetaData = { type: 1, pathInSchema: 3, totalCompressedSize: 7, dataPageOffset: 9, indexPageOffset: 10, dictionaryPageOffset: 11, statistics: 12, bloomFilterOffset: 14 };
const Statistics = { max: 1, maxValue: 5, isMaxValueExact: 7 };
const PARQUET_INT64 = 2;

interface Footer {
  meta: ThriftStruct;
  /** Where the FileMetaData starts: the end of the row groups and page indexes. */
  metaStart: number;
}

function readFooter(bytes: Uint8Array): Footer {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 12 || !buf.subarray(0, 4).equals(MAGIC) || !buf.subarray(buf.length - 4).equals(MAGIC)) throw new Error('not a Parquet file');
  const len = buf.readUInt32LE(buf.length - 8);
  const metaStart = buf.length - 8 - len;
  if (metaStart < 4) throw new Error('Parquet footer length out of range');
  return { meta: readStruct(buf.subarray(metaStart, buf.length - 8)), metaStart };
}

const structOf = (s: ThriftStruct, id: number) => field(s, id)?.value as ThriftStruct | undefined;
const listOf = (s: ThriftStruct, id: number) => field(s, id)?.value as ThriftList | undefined;
const i64Of = (s: ThriftStruct, id: number) => field(s, id)?.value as bigint | undefined;
const i32Of = (s: ThriftStruct, id: number) => field(s, id)?.value as number | undefined;
const sameField = (a: ThriftStruct, b: ThriftStruct, id: number) => {
  const fa = field(a, id);
  const fb = field(b, id);
  if (!fa || !fb) return fa === fb;
  return writeStruct({ fields: [fa] }).equals(writeStruct({ fields: [fb] }));
};

function rowGroups(meta: ThriftStruct): ThriftStruct[] {
  return (listOf(meta, FileMetaData.rowGroups)?.items ?? []) as ThriftStruct[];
}

function chunks(rg: ThriftStruct): ThriftStruct[] {
  return (listOf(rg, RowGroup.columns)?.items ?? []) as ThriftStruct[];
}

/** Largest `time` (epoch ms) the footer's statistics give, if they give one. */
function lastTime(meta: ThriftStruct): number | undefined {
  let last: number | undefined;
  for (const rg of rowGroups(meta)) {
    const col = chunks(rg)
      .map((c) => structOf(c, ColumnChunk.metaData))
      .find((m) => m && (listOf(m, ColumnMetaData.pathInSchema)?.items ?? []).map((p) => (p as Buffer).toString()).join('.') === 'time');
    if (!col || i32Of(col, ColumnMetaData.type) !== PARQUET_INT64) return undefined;
    const stats = structOf(col, ColumnMetaData.statistics);
    const max = stats && ((field(stats, Statistics.maxValue) ?? field(stats, Statistics.max))?.value as Buffer | undefined);
    if (!max || max.length !== 8 || field(stats, Statistics.isMaxValueExact)?.value === false) return undefined;
    const t = Number(max.readBigInt64LE());
    last = last === undefined ? t : Math.max(last, t);
  }
  return last;
}

/** The largest `time` of a Parquet file, from its footer's statistics alone; undefined when the footer does not give it (the caller decodes the file). */
export function footerLastTime(bytes: Uint8Array): number | undefined {
  try {
    return lastTime(readFooter(bytes).meta);
  } catch {
    return undefined;
  }
}

/**
 * `stored` with the rows of `incoming` appended as new row groups, or undefined
 * when that cannot be done (a row at or before the file's last row, an overwrite
 * whose range reaches into the file, a small or fragmented file, a footer this
 * code does not splice): the caller then merges and rewrites the whole file.
 */
export function appendParquet(stored: Uint8Array, incoming: Columns, opts: { overwrite: boolean; rangeFrom?: number; rangeTo?: number }): { bytes: Uint8Array; written: number } | undefined {
  if (incoming.time.length === 0) return undefined;
  let old: Footer;
  try {
    old = readFooter(stored);
  } catch {
    return undefined; // the full path reads the file and reports what is wrong with it
  }
  const numRows = i64Of(old.meta, FileMetaData.numRows) ?? 0n;
  if (numRows < BigInt(APPEND_MIN_ROWS) || rowGroups(old.meta).length >= MAX_ROW_GROUPS) return undefined;
  const last = lastTime(old.meta);
  if (last === undefined || !(incoming.time[0]! > last)) return undefined;
  // An overwrite drops the stored rows of its range: appending is right only if none is in it.
  if (opts.overwrite && !((opts.rangeFrom ?? -Infinity) > last)) return undefined;
  // The rows a merge would add (incoming as the full path keeps them: every row of it is new).
  const r = mergeColumns(emptyColumns(), incoming, opts);
  const bytes = spliceRowGroups(stored, old, encodeParquet(r.merged));
  return bytes && { bytes, written: r.written };
}

/** The file `stored` followed by the row groups of the file `added`; undefined if the two do not fit together. */
function spliceRowGroups(stored: Uint8Array, old: Footer, added: Uint8Array): Uint8Array | undefined {
  const add = readFooter(added);
  const m = old.meta;
  const a = add.meta;
  // Same layout and Arrow schema, no encryption: then row groups of one are valid in the other.
  for (const id of [FileMetaData.version, FileMetaData.schema, FileMetaData.keyValueMetadata, FileMetaData.columnOrders]) if (!sameField(m, a, id)) return undefined;
  for (const meta of [m, a]) if (field(meta, FileMetaData.encryptionAlgorithm) || field(meta, FileMetaData.footerSigningKeyMetadata)) return undefined;
  const newGroups = rowGroups(a);
  const newChunks = newGroups.flatMap(chunks);
  for (const c of newChunks) {
    const md = structOf(c, ColumnChunk.metaData);
    if (!md || field(c, ColumnChunk.filePath) || field(c, ColumnChunk.cryptoMetadata) || field(c, ColumnChunk.encryptedColumnMetadata)) return undefined;
    if (field(md, ColumnMetaData.bloomFilterOffset)) return undefined; // not written by encodeParquet; would need copying
  }
  // The added file: magic, its row groups' pages, then its page indexes, then its footer.
  // The pages move to where the stored footer began; the page indexes are laid out anew after them.
  let pagesEnd = add.metaStart;
  for (const c of newChunks) {
    for (const id of [ColumnChunk.columnIndexOffset, ColumnChunk.offsetIndexOffset]) {
      const at = i64Of(c, id);
      if (at !== undefined) pagesEnd = Math.min(pagesEnd, Number(at));
    }
  }
  const shift = BigInt(old.metaStart - 4);
  const shiftField = (s: ThriftStruct, id: number) => {
    const v = i64Of(s, id);
    if (v !== undefined) setField(s, id, T.I64, v + shift);
  };
  for (const c of newChunks) {
    const md = structOf(c, ColumnChunk.metaData)!;
    const start = Number(i64Of(md, ColumnMetaData.dictionaryPageOffset) ?? i64Of(md, ColumnMetaData.dataPageOffset) ?? -1n);
    if (start < 4 || start + Number(i64Of(md, ColumnMetaData.totalCompressedSize) ?? Infinity) > pagesEnd) return undefined;
    for (const id of [ColumnMetaData.dataPageOffset, ColumnMetaData.indexPageOffset, ColumnMetaData.dictionaryPageOffset]) shiftField(md, id);
    // Deprecated; 0 when no ColumnMetaData was written outside the footer.
    if ((i64Of(c, ColumnChunk.fileOffset) ?? 0n) > 0n) shiftField(c, ColumnChunk.fileOffset);
  }
  const oldCount = rowGroups(m).length;
  newGroups.forEach((rg, k) => {
    shiftField(rg, RowGroup.fileOffset);
    if (field(rg, RowGroup.ordinal)) setField(rg, RowGroup.ordinal, T.I16, oldCount + k);
  });
  const parts: Uint8Array[] = [stored.subarray(0, old.metaStart), added.subarray(4, pagesEnd)];
  let at = old.metaStart + (pagesEnd - 4);
  const place = (bytes: Uint8Array) => {
    parts.push(bytes);
    const start = at;
    at += bytes.length;
    return BigInt(start);
  };
  // Column indexes hold statistics only: copied. Offset indexes hold page offsets: shifted.
  for (const c of newChunks) {
    const off = i64Of(c, ColumnChunk.columnIndexOffset);
    const len = i32Of(c, ColumnChunk.columnIndexLength);
    if (off === undefined) continue;
    if (len === undefined) return undefined;
    setField(c, ColumnChunk.columnIndexOffset, T.I64, place(added.subarray(Number(off), Number(off) + len)));
  }
  for (const c of newChunks) {
    const off = i64Of(c, ColumnChunk.offsetIndexOffset);
    const len = i32Of(c, ColumnChunk.offsetIndexLength);
    if (off === undefined) continue;
    if (len === undefined) return undefined;
    const index = readStruct(added.subarray(Number(off), Number(off) + len));
    for (const loc of (listOf(index, 1)?.items ?? []) as ThriftStruct[]) shiftField(loc, 1); // PageLocation.offset
    const bytes = writeStruct(index);
    setField(c, ColumnChunk.offsetIndexOffset, T.I64, place(bytes));
    setField(c, ColumnChunk.offsetIndexLength, T.I32, bytes.length);
  }
  const meta: ThriftStruct = { fields: m.fields.map((f) => ({ ...f })) };
  const groups = listOf(m, FileMetaData.rowGroups)!;
  setField(meta, FileMetaData.rowGroups, T.LIST, { ...groups, items: [...groups.items, ...newGroups] });
  setField(meta, FileMetaData.numRows, T.I64, (i64Of(m, FileMetaData.numRows) ?? 0n) + (i64Of(a, FileMetaData.numRows) ?? 0n));
  const footer = writeStruct(meta);
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(footer.length, 0);
  MAGIC.copy(tail, 4);
  parts.push(footer, tail);
  return Buffer.concat(parts);
}
