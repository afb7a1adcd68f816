import * as arrow from 'apache-arrow';
import * as pq from 'parquet-wasm';
import { encodeParquet, emptyColumns } from '../src/parquet-columns.ts';
const ROWS = 1_000_000;
const c = emptyColumns(ROWS);
for (let i = 0; i < ROWS; i++) { c.time[i] = Date.UTC(2026,0,1) + i * 30000; c.open[i] = 100 + (i % 97); c.high[i] = c.open[i]! + 2; c.low[i] = c.open[i]! - 2; c.close[i] = c.open[i]! + 1; c.volume[i] = i % 1000; c.quoteVolume[i] = c.volume[i]! * c.close[i]!; }
const T = (l: string, f: () => any) => { const t = performance.now(); const r = f(); console.log(l, (performance.now() - t).toFixed(0), 'ms'); return r; };
for (let rep = 0; rep < 2; rep++) {
const bytes = T('encode total', () => encodeParquet(c));
const w = T('readParquet', () => pq.readParquet(bytes, { batchSize: 256 * 1024 }));
const ipc = T('intoIPCStream', () => w.intoIPCStream());
const table = T('tableFromIPC', () => arrow.tableFromIPC(ipc));
T('toArray all', () => { for (const f of table.schema.fields) table.getChild(f.name)!.toArray(); });
const vectors: Record<string, arrow.Vector> = {};
const tbl = T('arrow build', () => { for (const k of ['open','high','low','close','volume','quoteVolume'] as const) vectors[k] = arrow.makeVector(c[k]); return new arrow.Table(vectors); });
const ipc2 = T('tableToIPC', () => arrow.tableToIPC(tbl, 'stream'));
const wt = T('fromIPCStream', () => pq.Table.fromIPCStream(ipc2));
const props = new pq.WriterPropertiesBuilder().setCompression(pq.Compression.ZSTD).setMaxRowGroupSize(256 * 1024).build();
T('writeParquet (6 cols)', () => pq.writeParquet(wt, props));
}
