import type { Dirent } from 'node:fs';
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { TIMEFRAMES, type Timeframe } from '@wombat/core/jobs';

/**
 * The replaced pipeline's files: `<dir>/<SYMBOL>/<timeframe>/<year>.parquet`
 * (`data/KRW-BTC/1H/2025.parquet`), found under a directory without leaving it.
 */

/** Timeframe folder names of the old pipeline (and pandas/ccxt spellings) -> Wombat's names. */
const TIMEFRAME_ALIASES: Record<string, Timeframe> = {
  '1h': '1H',
  '60m': '1H',
  '4h': '4H',
  '240m': '4H',
  '1d': '1D',
  '1w': '1W',
  '1mo': '1M',
  '1mon': '1M',
};

/** Wombat's timeframe for an old folder name; `1m` is a minute and `1M` a month, as in Wombat. */
export function legacyTimeframe(name: string): Timeframe | undefined {
  if ((TIMEFRAMES as readonly string[]).includes(name)) return name as Timeframe;
  return TIMEFRAME_ALIASES[name.toLowerCase()];
}

/** Upbit markets are QUOTE-BASE (`KRW-BTC`, `BTC-ETH`, `USDT-XRP`). */
const UPBIT_MARKET = /^[A-Z]{2,6}-[A-Z0-9]{1,20}$/;

export function isUpbitMarket(name: string): boolean {
  return UPBIT_MARKET.test(name);
}

export interface LegacyFile {
  /** Absolute path as found (inside the directory). */
  file: string;
  /** Relative to the directory searched, for messages. */
  relative: string;
  bytes: number;
}

export interface SkippedFile {
  relative: string;
  reason: string;
}

export interface FindOptions {
  /** Folders not to enter (Wombat's own data under the same root). */
  exclude?: string[];
  /** Deepest folder level searched below the directory. */
  maxDepth?: number;
  /** At most this many .parquet files. */
  maxFiles?: number;
}

export const FIND_MAX_DEPTH = 8;
export const FIND_MAX_FILES = 100_000;

/**
 * Every `.parquet` file under `dir`, sorted. Symbolic links are followed only when they
 * lead to a place inside `dir` (each real folder is entered once, so a link loop ends);
 * hidden entries (temp files, lock folders) and files of other kinds are passed over
 * silently; links out of the tree are reported as skipped.
 */
export async function findLegacyFiles(dir: string, opts: FindOptions = {}): Promise<{ files: LegacyFile[]; skipped: SkippedFile[]; truncated: boolean }> {
  const root = await realpath(dir);
  const exclude = new Set(await Promise.all((opts.exclude ?? []).map((p) => realpath(p).catch(() => path.resolve(p)))));
  const maxDepth = opts.maxDepth ?? FIND_MAX_DEPTH;
  const maxFiles = opts.maxFiles ?? FIND_MAX_FILES;
  const files: LegacyFile[] = [];
  const skipped: SkippedFile[] = [];
  const seen = new Set<string>();
  let truncated = false;
  const inside = (real: string) => real === root || real.startsWith(root + path.sep);

  async function walk(shown: string, real: string, depth: number): Promise<void> {
    if (seen.has(real) || exclude.has(real)) return;
    seen.add(real);
    let entries: Dirent[];
    try {
      entries = await readdir(real, { withFileTypes: true });
    } catch (err) {
      skipped.push({ relative: path.relative(dir, shown) || '.', reason: `cannot read the folder (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (truncated) return;
      if (e.name.startsWith('.')) continue;
      const at = path.join(shown, e.name);
      const relative = path.relative(dir, at);
      let target = path.join(real, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const resolved = await realpath(target).catch(() => undefined);
        if (!resolved || !inside(resolved)) {
          skipped.push({ relative, reason: resolved ? 'a symbolic link out of the directory' : 'a broken symbolic link' });
          continue;
        }
        const s = await stat(resolved);
        target = resolved;
        isDir = s.isDirectory();
        isFile = s.isFile();
      }
      if (isDir) {
        if (depth < maxDepth) await walk(at, target, depth + 1);
        else skipped.push({ relative, reason: `deeper than ${maxDepth} folders` });
      } else if (isFile && e.name.endsWith('.parquet')) {
        if (files.length >= maxFiles) {
          truncated = true;
          return;
        }
        files.push({ file: at, relative, bytes: (await lstat(target)).size });
      }
    }
  }
  await walk(path.resolve(dir), root, 0);
  return { files, skipped, truncated };
}

export interface LegacyPlace {
  symbol: string;
  timeframe: Timeframe;
  year: number;
}

/** Market, timeframe and year from `<SYMBOL>/<timeframe>/<year>.parquet`, or why the path does not fit. */
export function parseLegacyPath(relative: string): { ok: true; place: LegacyPlace } | { ok: false; reason: string } {
  const parts = relative.split(path.sep);
  const layout = 'not in the <MARKET>/<timeframe>/<year>.parquet layout';
  if (parts.length < 3) return { ok: false, reason: layout };
  const [symbol, tf, name] = parts.slice(-3) as [string, string, string];
  const year = /^(\d{4})\.parquet$/.exec(name)?.[1];
  if (!year) return { ok: false, reason: `${layout} (file name is not <year>.parquet)` };
  const timeframe = legacyTimeframe(tf);
  if (!timeframe) return { ok: false, reason: `unknown timeframe "${tf}" (known: ${TIMEFRAMES.join(', ')}, also 1h, 4h, 1d, 60m, 240m)` };
  if (!isUpbitMarket(symbol)) return { ok: false, reason: `"${symbol}" is not an Upbit market such as KRW-BTC` };
  return { ok: true, place: { symbol, timeframe, year: Number(year) } };
}
