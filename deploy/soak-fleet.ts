/**
 * The soak's processes: several engines, several workers and the api, each in a slot
 * that a fault kills and the soak starts again. Every process a slot ever ran is kept
 * as a Life (pid, worker id, when it started and ended, which signal the soak sent),
 * so the checks can tell a run lost with a SIGKILLed worker from one lost while its
 * worker lived.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '@wombat/core/platform';
import { commonEnv, serviceEnv, startProcess, waitReady, type ServiceName, type ServiceProcess } from './outage-harness.ts';

export interface Life {
  slot: string;
  service: ServiceName;
  pid: number;
  /** The worker's id in wombat.workers (and in the execution log), from its start line. */
  workerId?: string;
  startedAt: number;
  /** Ready: the api answers /health, the engine or worker logged its start. */
  readyAt?: number;
  endedAt?: number;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
  /** The signal the soak sent, and when: a SIGKILL, a SIGTERM fault, or the final SIGTERM. */
  sent?: { signal: 'SIGKILL' | 'SIGTERM'; at: number; final: boolean };
  proc: ServiceProcess;
}

export interface Slot {
  name: string;
  service: ServiceName;
  env: Record<string, string>;
  current: Life;
}

export interface Fleet {
  apiUrl: string;
  slots: Slot[];
  /** Every process of every slot, in start order. */
  lives: Life[];
  slot(name: string): Slot;
  /** Sends `signal` to the slot's process and waits for it to exit. */
  signal(slot: Slot, signal: 'SIGKILL' | 'SIGTERM'): Promise<Life>;
  /** A new process in the slot, once ready. */
  restart(slot: Slot): Promise<Life>;
  /** The life (living or not) whose worker has this id or pid. */
  workerLife(by: { workerId?: string; pid?: number }): Life | undefined;
  /** SIGTERM to every process still running (the final stop), SIGKILL after 30 s. Memoized. */
  stop(): Promise<void>;
}

const WORKER_ID = /"workerId":"([0-9a-f-]{36})"/;

export async function startFleet(opts: {
  databaseUrl: string;
  dataRoot: string;
  executionLog: string;
  engines: number;
  workers: number;
  /** Each process's output (its tail) is written here as <slot>-<pid>.log when it exits. */
  logDir?: string;
  /** The services' LOG_LEVEL (default info); debug shows each stop step's time. */
  logLevel?: string;
  /** Settings every service gets besides the soak's own (the test scales the heartbeat limits down). */
  env?: Record<string, string>;
  teardown(fn: () => unknown): void;
}): Promise<Fleet> {
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const common = { ...commonEnv(opts), ...(opts.logLevel ? { LOG_LEVEL: opts.logLevel } : {}), ...opts.env };
  const lives: Life[] = [];
  const slotOf = (name: string, service: ServiceName, extra: Record<string, string> = {}) => ({ name, service, env: { ...common, ...serviceEnv(service, apiPort), ...extra } });
  const specs = [
    slotOf('api', 'api'),
    ...Array.from({ length: opts.engines }, (_, i) => slotOf(`engine-${i + 1}`, 'scheduler-engine')),
    // Default worker heartbeat and polling unless the soak's env says otherwise: liveness as in production.
    ...Array.from({ length: opts.workers }, (_, i) => slotOf(`worker-${i + 1}`, 'worker', { WORKER_EXECUTION_LOG: opts.executionLog })),
  ];

  const launch = (spec: { name: string; service: ServiceName; env: Record<string, string> }): Life => {
    const proc = startProcess(spec.service, spec.env);
    const life: Life = { slot: spec.name, service: spec.service, pid: proc.child.pid!, startedAt: Date.now(), proc };
    void proc.exited.then((exit) => {
      life.endedAt = Date.now();
      life.exit = exit;
      if (opts.logDir) writeFileSync(path.join(opts.logDir, `${spec.name}-${life.pid}.log`), proc.output());
    });
    lives.push(life);
    return life;
  };
  const ready = async (life: Life) => {
    await waitReady(life.proc, apiUrl);
    life.readyAt = Date.now();
    if (life.service === 'worker') life.workerId = WORKER_ID.exec(life.proc.output())?.[1];
  };

  const slots: Slot[] = specs.map((spec) => ({ ...spec, current: launch(spec) }));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      const running = lives.filter((l) => l.proc.alive());
      for (const l of running) {
        l.sent ??= { signal: 'SIGTERM', at: Date.now(), final: true };
        l.proc.child.kill('SIGTERM');
      }
      const kill = setTimeout(() => running.forEach((l) => l.proc.alive() && l.proc.child.kill('SIGKILL')), 30_000);
      await Promise.all(running.map((l) => l.proc.exited));
      clearTimeout(kill);
    })());
  opts.teardown(stop);
  for (const s of slots) await ready(s.current);

  return {
    apiUrl,
    slots,
    lives,
    slot(name) {
      const s = slots.find((x) => x.name === name);
      if (!s) throw new Error(`no slot ${name}`);
      return s;
    },
    async signal(slot, signal) {
      const life = slot.current;
      // Died on its own meanwhile: it stays recorded as such.
      if (!life.proc.alive()) return life;
      life.sent = { signal, at: Date.now(), final: false };
      life.proc.child.kill(signal);
      // A SIGTERMed process has SHUTDOWN_TIMEOUT_MS (10 s) to drain; past 30 s it hangs.
      const kill = setTimeout(() => life.proc.alive() && life.proc.child.kill('SIGKILL'), 30_000);
      await life.proc.exited;
      clearTimeout(kill);
      return life;
    },
    async restart(slot) {
      slot.current = launch(slot);
      await ready(slot.current);
      return slot.current;
    },
    workerLife(by) {
      return lives.find((l) => l.service === 'worker' && ((by.workerId !== undefined && l.workerId === by.workerId) || (by.pid !== undefined && l.pid === by.pid)));
    },
    stop,
  };
}
