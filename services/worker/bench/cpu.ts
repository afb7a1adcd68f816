/**
 * CPU time spent by a drain, split between this process and the PostgreSQL server, so the benchmark
 * can say where each runner's time goes (on a 2-core machine a drain is CPU-bound, and jobs/s follows
 * CPU per job). The server's share is read from /proc: the postmaster of the connection's backend
 * and its children, so it works only with a server on this host (embedded or local) and counts
 * backends alive at both readings; elsewhere it reads undefined.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Sql } from '@wombat/core/platform';

/** utime + stime of a process and its parent pid, in ms; undefined once it is gone. */
function procTimes(pid: number): { cpuMs: number; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after the name: state(0) ppid(1) ... utime(11) stime(12), in clock ticks (100 Hz).
    return { ppid: Number(fields[1]), cpuMs: (Number(fields[11]) + Number(fields[12])) * 10 };
  } catch {
    return undefined;
  }
}

export interface CpuReading {
  processMs: number;
  /** PostgreSQL's processes, by pid (ms). */
  server?: Map<number, number>;
}

export interface CpuMeter {
  read(): CpuReading;
  /** CPU per job in microseconds between two readings. */
  perJob(from: CpuReading, to: CpuReading, jobs: number, childMs?: number): { node: number; server?: number };
}

export async function cpuMeter(sql: Sql): Promise<CpuMeter> {
  const [{ pid }] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const postmaster = procTimes(pid)?.ppid;
  function server(): Map<number, number> | undefined {
    if (postmaster === undefined) return undefined;
    const out = new Map<number, number>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const p = procTimes(Number(name));
      if (p && (Number(name) === postmaster || p.ppid === postmaster)) out.set(Number(name), p.cpuMs);
    }
    return out;
  }
  return {
    read() {
      const u = process.cpuUsage();
      const s = server();
      return { processMs: (u.user + u.system) / 1000, ...(s ? { server: s } : {}) };
    },
    perJob(from, to, jobs, childMs = 0) {
      const node = ((to.processMs - from.processMs + childMs) * 1000) / jobs;
      if (!from.server || !to.server) return { node };
      let ms = 0;
      for (const [p, t] of to.server) ms += t - (from.server.get(p) ?? 0);
      return { node, server: (ms * 1000) / jobs };
    },
  };
}
