/**
 * Fail-over to a streaming standby: the primary killed, the standby promoted, one
 * stable address re-pointed, Wombat's services on it throughout. Once with a
 * synchronous standby (nothing accepted may be lost), once asynchronous (only what was
 * accepted before the kill may be). Needs PostgreSQL's own binaries with pg_basebackup.
 */
import t from 'tap';
import { findPostgresBin, runFailover } from '../failover-harness.ts';

const ci = process.env.CI === 'true' || process.env.WOMBAT_CI === '1';
const bin = findPostgresBin();
/** deploy/README.md's promise: every service healthy again within this of the promotion. */
const HEALTHY_WITHIN_MS = 15_000;

if (!bin) {
  if (ci) t.fail('no PostgreSQL binaries with pg_basebackup (Debian: apt-get install postgresql)');
  else t.plan(0, 'no PostgreSQL binaries with pg_basebackup (Debian: apt-get install postgresql)');
} else {
  for (const synchronous of [true, false]) {
    t.test(`fail-over to ${synchronous ? 'a synchronous' : 'an asynchronous'} standby: every service back within 15 s, nothing published twice, nothing stuck${synchronous ? ', nothing accepted lost' : ''}`, async (t) => {
      const r = await runFailover(t, { bin, synchronous, settleMs: 30_000 });
      const { apiAcceptsMs, enginePublishesMs, engineHeartbeatsMs, workerFetchesMs } = r.recovery;
      t.comment(`${synchronous ? 'sync' : 'async'}: kill to promotion ${r.outageMs} ms; after it: api accepts ${apiAcceptsMs} ms, engine publishes ${enginePublishesMs} ms, heartbeats ${engineHeartbeatsMs} ms, worker fetches ${workerFetchesMs} ms; ${r.accepted} accepted, ${r.lostAccepted.length} lost`);
      for (const [what, ms] of Object.entries(r.recovery)) t.ok(ms <= HEALTHY_WITHIN_MS, `${what}: ${ms} ms after the promotion`);
      t.ok(r.accepted > 20, `${r.accepted} tasks accepted`);
      t.same(r.lostAfter, [], 'nothing accepted after the kill is lost');
      if (synchronous) t.same(r.lostAccepted, [], 'nothing accepted is lost with a synchronous standby');
      t.equal(r.publishedTwice, 0, 'no occurrence published twice');
      t.same(r.completedTwice, [], 'no run completed twice');
      t.same(r.stuck, [], 'no run left stuck');
    });
  }
}
