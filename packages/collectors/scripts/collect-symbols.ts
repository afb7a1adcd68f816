/**
 * Refreshes the symbols table from the exchanges.
 *
 *   npx tsx packages/collectors/scripts/collect-symbols.ts [--exchanges upbit,kis]
 *
 * Needs Postgres (DATABASE_URL, or the embedded one). Exit code 0 only on success.
 */
import { parseArgs } from 'node:util';
import { EXCHANGES, type Exchange } from '@wombat/core/jobs';
import { openContext, usageError } from './script-support.ts';

const USAGE = 'usage: collect-symbols [--exchanges upbit,kis]';
let args;
try {
  args = parseArgs({ options: { exchanges: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
} catch (err) {
  usageError((err as Error).message, USAGE);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const exchanges = args.exchanges?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = exchanges?.filter((e) => !(EXCHANGES as readonly string[]).includes(e)) ?? [];
if (unknown.length > 0) usageError(`--exchanges: unknown exchange ${unknown.join(', ')}; known: ${EXCHANGES.join(', ')}`, USAGE);

const ctx = await openContext('collect-symbols', { needDb: () => true });
let code = 0;
try {
  const results = await ctx.collectors.collectSymbols({ ...(exchanges ? { exchanges: exchanges as Exchange[] } : {}), signal: ctx.signal });
  for (const r of results) process.stdout.write(`${r.exchange}: ${r.total} symbols, ${r.added} added, ${r.renamed} renamed, ${r.delisted} delisted\n`);
} catch (err) {
  ctx.log.error({ err }, 'symbol collection failed');
  process.stderr.write(`collect-symbols failed: ${(err as Error).message}\n`);
  code = ctx.signal.aborted ? 130 : 1;
} finally {
  await ctx.close();
}
process.exit(code);
