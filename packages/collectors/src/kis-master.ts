import { readFile } from 'node:fs/promises';
import { unzipSync } from 'fflate';
import { request } from 'undici';
import { AppError, PermanentError } from '@wombat/core/platform';
import type { ListedSymbol } from './pg-store.ts';

/**
 * KIS symbol master files (EXCHANGES.md §2.7): a zip holding `<market>_code.mst`,
 * cp949 text, one record per line: short code in [0, 9), ISIN in [9, 21), the
 * Korean name up to the fixed-width tail (228 characters for KOSPI, 222 for
 * KOSDAQ) whose first two characters are the group code (ST stock, EF ETF, ...).
 */
export const KIS_MARKETS = ['KOSPI', 'KOSDAQ'] as const;
export type KisMarket = (typeof KIS_MARKETS)[number];

export const MASTER_TAIL_CHARS: Record<KisMarket, number> = { KOSPI: 228, KOSDAQ: 222 };

export interface MasterRecord extends ListedSymbol {
  isin: string;
  groupCode: string;
}

/** Reads a master zip from an http(s) URL or a local path. */
export async function loadMasterZip(source: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<Uint8Array> {
  if (!/^https?:\/\//i.test(source)) return new Uint8Array(await readFile(source));
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const res = await request(source, { signal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout });
  const bytes = new Uint8Array(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new AppError('master_download_failed', `KIS master file ${source} answered ${res.statusCode}`);
  return bytes;
}

export function parseMasterZip(zip: Uint8Array, market: KisMarket): MasterRecord[] {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(zip);
  } catch (err) {
    throw new PermanentError('bad_master_file', `KIS ${market} master file is not a zip: ${(err as Error).message}`, { cause: err });
  }
  const entry = Object.entries(files).find(([name]) => name.endsWith('.mst'));
  if (!entry) throw new PermanentError('bad_master_file', `KIS ${market} master zip holds no .mst file (found: ${Object.keys(files).join(', ') || 'nothing'})`);
  return parseMaster(new TextDecoder('euc-kr').decode(entry[1]), market);
}

export function parseMaster(text: string, market: KisMarket): MasterRecord[] {
  const tail = MASTER_TAIL_CHARS[market];
  const out: MasterRecord[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    if (line.length < 21 + tail + 1) {
      throw new PermanentError('bad_master_file', `KIS ${market} master line ${i + 1} has ${line.length} characters; a record needs more than ${21 + tail}`);
    }
    const symbol = line.slice(0, 9).trimEnd();
    const name = line.slice(21, line.length - tail).trim();
    if (!/^[0-9A-Z]+$/.test(symbol) || name === '') throw new PermanentError('bad_master_file', `KIS ${market} master line ${i + 1} has no code or name`);
    out.push({ symbol, isin: line.slice(9, 21).trim(), name, market, groupCode: line.slice(line.length - tail, line.length - tail + 2) });
  });
  return out;
}
