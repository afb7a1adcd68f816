/**
 * The soak's faults: what each kind does to the fleet or the database, a seeded
 * random sequence of them, and a record of each as injected (when, which process,
 * how many handler executions were running then, how the process exited, and after
 * a database fault how long each service took to recover).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PrivatePostgres } from '@wombat/core/testing';
import { measureRecovery, type Answer, type Recovery } from './outage-harness.ts';
import { openExecutions, readExecutions } from './soak-executions.ts';
import type { Fleet, Slot } from './soak-fleet.ts';

export const FAULT_KINDS = ['engine-kill', 'worker-kill', 'worker-term', 'api-kill', 'pg-restart', 'pg-outage'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  kind: FaultKind;
  /** Quiet time before the fault. */
  afterMs: number;
  /** 1-based engine or worker slot; unset: a worker with executions running, or engine 1. */
  target?: number;
  /** pg-outage: how long the database stays stopped. */
  outageMs?: number;
  /** worker-term: a canary sleeping this long is submitted, and its worker is sent SIGTERM once it runs. */
  inFlightSleepMs?: number;
  /** After a SIGKILL, how long the slot stays empty (default 1 s). */
  restartAfterMs?: number;
}

export interface FaultRecord {
  fault: Fault;
  at: number;
  doneAt: number;
  slot?: string;
  pid?: number;
  /** Handler executions running (started, no end line) at the fault, in every worker. */
  inFlight: number;
  /** Of those, the ones in the process signalled. */
  inFlightThere?: number;
  /** A SIGTERMed process's exit. */
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** worker-term with inFlightSleepMs: the canary's run id. */
  run?: string;
  /** Database faults: from PostgreSQL accepting connections again. */
  recovery?: Recovery;
}

export interface FaultContext {
  fleet: Fleet;
  pg: PrivatePostgres;
  databaseUrl: string;
  executionLog: string;
  /** An every-second schedule (overlap allow) whose publications measureRecovery waits for. */
  recoveryScheduleId: number;
  submit(params: object, maxRetries: number): Promise<Answer>;
  /** Called 2 s into a database outage (the soak sends its fuzzed requests then). */
  duringOutage?(): Promise<void>;
}

/** mulberry32: a small seeded PRNG, so that SEED replays a fault sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WEIGHTS: Record<FaultKind, number> = { 'engine-kill': 2, 'worker-kill': 3, 'worker-term': 2, 'api-kill': 1, 'pg-restart': 1, 'pg-outage': 1 };

/** Faults filling about `durationMs` (a fault's own length estimated), 5-20 s apart. */
export function randomFaults(seed: number, durationMs: number, fleet: { engines: number; workers: number }): Fault[] {
  const rnd = seededRandom(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const total = Object.values(WEIGHTS).reduce((a, b) => a + b, 0);
  const faults: Fault[] = [];
  for (let planned = 0; planned < durationMs; ) {
    let pick = rnd() * total;
    const kind = FAULT_KINDS.find((k) => (pick -= WEIGHTS[k]) < 0) ?? 'worker-kill';
    const f: Fault = { kind, afterMs: int(5_000, 20_000), restartAfterMs: int(500, 5_000) };
    if (kind === 'engine-kill') f.target = int(1, fleet.engines);
    if (kind === 'worker-kill' || kind === 'worker-term') f.target = int(1, fleet.workers);
    if (kind === 'pg-outage') f.outageMs = int(10_000, 60_000);
    faults.push(f);
    planned += f.afterMs + (f.outageMs ?? 0) + 8_000;
  }
  return faults;
}

function inFlight(ctx: FaultContext): number {
  let n = 0;
  for (const [pid, xs] of openExecutions(readExecutions(ctx.executionLog))) if (ctx.fleet.workerLife({ pid })?.proc.alive()) n += xs.length;
  return n;
}

/** The worker slot to hit: the target when given, else the one running the most executions (waits up to 10 s for any). */
async function workerWithWork(ctx: FaultContext, target: number | undefined): Promise<Slot> {
  const workers = ctx.fleet.slots.filter((s) => s.service === 'worker');
  const end = Date.now() + 10_000;
  for (;;) {
    const open = openExecutions(readExecutions(ctx.executionLog));
    const count = (s: Slot) => open.get(s.current.pid)?.length ?? 0;
    if (target !== undefined) {
      const s = workers[(target - 1) % workers.length]!;
      if (count(s) > 0 || Date.now() > end) return s;
    } else {
      const best = [...workers].sort((a, b) => count(b) - count(a))[0]!;
      if (count(best) > 0 || Date.now() > end) return best;
    }
    await sleep(100);
  }
}

async function waitForStart(ctx: FaultContext, run: string, limitMs: number): Promise<number | undefined> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    const x = readExecutions(ctx.executionLog).find((e) => e.run === run && e.end === undefined);
    if (x) return x.pid;
    await sleep(100);
  }
  return undefined;
}

async function databaseFault(f: Fault, ctx: FaultContext, rec: FaultRecord): Promise<void> {
  rec.inFlight = inFlight(ctx);
  await ctx.pg.stop();
  const stoppedAt = Date.now();
  if (f.kind === 'pg-outage') {
    const outageMs = f.outageMs ?? 20_000;
    await sleep(Math.min(2000, outageMs));
    await ctx.duringOutage?.();
    await sleep(Math.max(0, outageMs - (Date.now() - stoppedAt)));
  }
  await ctx.pg.start();
  rec.recovery = await measureRecovery({
    apiUrl: ctx.fleet.apiUrl,
    databaseUrl: ctx.databaseUrl,
    scheduleId: ctx.recoveryScheduleId,
    restartedAt: Date.now(),
    limitMs: 60_000,
  });
}

export async function injectFault(f: Fault, ctx: FaultContext): Promise<FaultRecord> {
  await sleep(f.afterMs);
  const rec: FaultRecord = { fault: f, at: Date.now(), doneAt: 0, inFlight: 0 };
  if (f.kind === 'pg-restart' || f.kind === 'pg-outage') {
    await databaseFault(f, ctx, rec);
  } else {
    let slot: Slot;
    if (f.kind === 'api-kill') slot = ctx.fleet.slot('api');
    else if (f.kind === 'engine-kill') slot = ctx.fleet.slot(`engine-${f.target ?? 1}`);
    else if (f.kind === 'worker-term' && f.inFlightSleepMs !== undefined) {
      const a = await ctx.submit({ sleep_ms: f.inFlightSleepMs }, 1);
      if (!a.taskId) throw new Error(`worker-term: the canary was not accepted (${a.status} ${a.code ?? a.failure ?? ''})`);
      rec.run = a.taskId;
      const pid = await waitForStart(ctx, a.taskId, 20_000);
      const found = ctx.fleet.slots.find((s) => s.current.pid === pid);
      if (!found) throw new Error(`worker-term: canary ${a.taskId} did not start in a running worker within 20 s`);
      slot = found;
      // Well into the sleep, and far from its end.
      await sleep(Math.min(1000, f.inFlightSleepMs / 4));
    } else slot = await workerWithWork(ctx, f.target);
    rec.at = Date.now();
    rec.inFlight = inFlight(ctx);
    if (slot.service === 'worker') rec.inFlightThere = openExecutions(readExecutions(ctx.executionLog)).get(slot.current.pid)?.length ?? 0;
    rec.slot = slot.name;
    rec.pid = slot.current.pid;
    const signal = f.kind === 'worker-term' ? 'SIGTERM' : 'SIGKILL';
    const life = await ctx.fleet.signal(slot, signal);
    if (signal === 'SIGTERM') rec.exit = life.exit!;
    else await sleep(f.restartAfterMs ?? 1000);
    await ctx.fleet.restart(slot);
  }
  rec.doneAt = Date.now();
  return rec;
}

export function describeFault(r: FaultRecord): string {
  const f = r.fault;
  const what =
    f.kind === 'pg-outage'
      ? `PostgreSQL stopped ${(f.outageMs ?? 20_000) / 1000} s`
      : f.kind === 'pg-restart'
        ? 'PostgreSQL fast restart'
        : `${f.kind === 'worker-term' ? 'SIGTERM' : 'SIGKILL'} ${r.slot} (pid ${r.pid})${r.exit ? `, exit ${r.exit.code ?? r.exit.signal}` : ''}${r.run ? `, canary ${r.run} in flight` : ''}${r.inFlightThere !== undefined ? ` (${r.inFlightThere} of its handlers running)` : ''}`;
  const rec = r.recovery
    ? `; recovered: api ${r.recovery.apiAcceptsMs} ms, engine publishes ${r.recovery.enginePublishesMs} / heartbeats ${r.recovery.engineHeartbeatsMs} ms, worker fetches ${r.recovery.workerFetchesMs} ms`
    : '';
  return `${new Date(r.at).toISOString().slice(11, 23)} ${f.kind}: ${what}, ${r.inFlight} executions in flight${rec}`;
}
