/**
 * One drainer process of the 2-process drain benchmark: `node bench/drain-child.ts <system> <url>`.
 * Loads its modules, says `ready`, starts draining on `go` and stops on `stop` (IPC messages).
 */
import { createLogger } from '@wombat/core/platform';
import { SYSTEMS, startDrainer, type Drainer, type System } from './peers.ts';

const [system, url] = process.argv.slice(2) as [System, string];
if (!SYSTEMS.includes(system) || !url || !process.send) {
  console.error(`usage (forked by bench/drain.ts): drain-child.ts <${SYSTEMS.join('|')}> <database url>`);
  process.exit(2);
}
const log = createLogger({ name: `bench-${system}`, level: process.env.LOG_LEVEL ?? 'warn', format: 'json' });
let drainer: Drainer | undefined;
process.on('message', (message) => {
  void (async () => {
    if (message === 'go') {
      drainer = await startDrainer(system, url, log);
      process.send!('started');
    } else if (message === 'stop') {
      // A drainer that cannot stop within 30 s is reported, not waited for.
      const stopped = await Promise.race([drainer?.stop().then(() => true), new Promise((r) => setTimeout(r, 30_000, false)).then(() => false)]);
      if (!stopped) console.error(`${system} drainer did not stop within 30 s`);
      process.exit(stopped ? 0 : 1);
    }
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
// The benchmark died: do not keep draining against its database.
process.on('disconnect', () => process.exit(1));
process.send('ready');
