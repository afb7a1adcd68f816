import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listSnapshots, readCandlesParquet, retained, snapshotName, takeSnapshot, writeCandlesParquet, type Candle, type SeriesKey } from '@wombat/collectors';

function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'wombat-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const key: SeriesKey = { exchange: 'upbit', symbol: 'KRW-BTC', timeframe: '1D' };
const day = (i: number): Candle => ({ time: new Date(Date.UTC(2026, 0, 1 + i)), open: 100 + i, high: 110 + i, low: 90 + i, close: 105 + i, volume: 10 + i, quoteVolume: 1000 + i });
const KEEP = { keepDaily: 7, keepWeekly: 4 };

t.test('a snapshot links every Parquet file, keeps the version it linked while the writer replaces the file, and lists itself', async (t) => {
  const root = scratch();
  const dataRoot = path.join(root, 'data');
  const snaps = path.join(root, 'snapshots');
  await writeCandlesParquet(dataRoot, key, [day(0), day(1), day(2)], { overwrite: false });
  await writeCandlesParquet(dataRoot, { ...key, symbol: 'KRW-ETH' }, [day(0)], { overwrite: false });
  // What a writer leaves while it works, and what is not candle data: neither is in a snapshot.
  const btcDir = path.join(dataRoot, 'upbit', 'KRW-BTC', '1D');
  writeFileSync(path.join(btcDir, '.2026.parquet.123.abcd.tmp'), 'partial');
  writeFileSync(path.join(dataRoot, 'notes.txt'), 'x');

  const r = await takeSnapshot({ dataRoot, snapshotDir: snaps, now: new Date('2026-12-07T03:45:00Z'), retention: KEEP });
  t.match(r, { name: 'data-2026-12-07T03-45-00Z', files: 2, linked: 2, copied: 0, removed: [] });
  t.notOk('copiedBecause' in r, 'nothing copied');
  const stored = path.join(btcDir, '2026.parquet');
  const linked = path.join(snaps, r.name, 'upbit', 'KRW-BTC', '1D', '2026.parquet');
  t.equal(statSync(linked).ino, statSync(stored).ino, 'the same file, not a copy');
  t.equal(r.bytes, statSync(stored).size + statSync(path.join(dataRoot, 'upbit', 'KRW-ETH', '1D', '2026.parquet')).size);
  t.same(readdirSync(path.join(snaps, r.name, 'upbit', 'KRW-BTC', '1D')), ['2026.parquet'], 'no temporary file');
  t.notOk(readdirSync(path.join(snaps, r.name)).includes('notes.txt'));

  // The collector writes on: the file is replaced by rename, the snapshot keeps what it had.
  await writeCandlesParquet(dataRoot, key, [day(3), day(4)], { overwrite: false });
  t.not(statSync(stored).ino, statSync(linked).ino, 'the data file is a new file now');
  t.equal((await readCandlesParquet(dataRoot, key, new Date(0), new Date('2027-01-01'))).length, 5);
  t.equal((await readCandlesParquet(path.join(snaps, r.name), key, new Date(0), new Date('2027-01-01'))).length, 3, 'the snapshot still reads the three candles it took');

  const [listed] = await listSnapshots(snaps);
  t.match(listed, { name: r.name, taken_at: '2026-12-07T03:45:00.000Z', files: 2, linked: 2, copied: 0, bytes: r.bytes });
  t.match(JSON.parse(readFileSync(path.join(snaps, r.name, 'manifest.json'), 'utf8')), { data_root: dataRoot, files: 2 });
});

t.test('copies where links are not wanted or impossible, and says so', async (t) => {
  const root = scratch();
  const dataRoot = path.join(root, 'data');
  await writeCandlesParquet(dataRoot, key, [day(0)], { overwrite: false });
  const r = await takeSnapshot({ dataRoot, snapshotDir: path.join(root, 's'), now: new Date('2026-12-07T03:45:00Z'), retention: KEEP, copy: true });
  t.match(r, { files: 1, linked: 0, copied: 1, copiedBecause: /copies were asked for/ });
  const copy = path.join(root, 's', r.name, 'upbit', 'KRW-BTC', '1D', '2026.parquet');
  t.not(statSync(copy).ino, statSync(path.join(dataRoot, 'upbit', 'KRW-BTC', '1D', '2026.parquet')).ino);
  t.same(readFileSync(copy), readFileSync(path.join(dataRoot, 'upbit', 'KRW-BTC', '1D', '2026.parquet')));
});

t.test('a snapshot directory inside DATA_ROOT is refused; an empty DATA_ROOT makes an empty snapshot', async (t) => {
  const root = scratch();
  await t.rejects(takeSnapshot({ dataRoot: root, snapshotDir: path.join(root, 'snaps'), retention: KEEP }), /SNAPSHOT_DIR \(.*\) must be outside DATA_ROOT/);
  const r = await takeSnapshot({ dataRoot: path.join(root, 'missing'), snapshotDir: path.join(root, '..', `${path.basename(root)}-s`), retention: KEEP });
  t.teardown(() => rmSync(path.join(root, '..', `${path.basename(root)}-s`), { recursive: true, force: true }));
  t.match(r, { files: 0, bytes: 0 });
});

t.test('retention keeps the newest of each of the last 7 days and of the last 4 ISO weeks', async (t) => {
  // One snapshot a day at 03:45 for 60 days, plus a second one on the last day.
  const at = (d: number, h = 3) => ({ at: new Date(Date.UTC(2026, 9, 1 + d, h, 45)) });
  const items = [...Array.from({ length: 60 }, (_, d) => at(d)), at(59, 15)];
  const keep = [...retained(items, KEEP)].map((i) => i.at.toISOString()).sort();
  // Days: 11-23..11-29 (the newest of 11-29 is the 15:45 one). Weeks (Mondays 11-02, 11-09, 11-16, 11-23):
  // their newest are Sundays 11-08, 11-15, 11-22, and 11-29 (already kept).
  t.same(keep, [
    '2026-11-08T03:45:00.000Z',
    '2026-11-15T03:45:00.000Z',
    '2026-11-22T03:45:00.000Z',
    '2026-11-23T03:45:00.000Z',
    '2026-11-24T03:45:00.000Z',
    '2026-11-25T03:45:00.000Z',
    '2026-11-26T03:45:00.000Z',
    '2026-11-27T03:45:00.000Z',
    '2026-11-28T03:45:00.000Z',
    '2026-11-29T15:45:00.000Z',
  ]);
  t.equal(retained([at(0)], { keepDaily: 1, keepWeekly: 0 }).size, 1, 'the newest is always kept');

  // Applied on disk: a snapshot per day for ten days, then one more removes what falls out.
  const root = scratch();
  const dataRoot = path.join(root, 'data');
  mkdirSync(dataRoot);
  const snaps = path.join(root, 's');
  for (let d = 0; d < 10; d++) await takeSnapshot({ dataRoot, snapshotDir: snaps, now: new Date(Date.UTC(2026, 10, 20 + d, 3, 45)), retention: { keepDaily: 3, keepWeekly: 0 } });
  t.same(
    (await listSnapshots(snaps)).map((s) => s.name),
    [snapshotName(new Date(Date.UTC(2026, 10, 29, 3, 45))), snapshotName(new Date(Date.UTC(2026, 10, 28, 3, 45))), snapshotName(new Date(Date.UTC(2026, 10, 27, 3, 45)))],
  );
  t.same(readdirSync(snaps).filter((n) => n.startsWith('.')), [], 'no partial snapshot left');
});
