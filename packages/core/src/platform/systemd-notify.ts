import { spawn } from 'node:child_process';
import type { Logger } from './logger.ts';

/**
 * systemd's notification protocol (sd_notify) for units with Type=notify and
 * WatchdogSec=: READY=1 once the service works, then WATCHDOG=1 every half
 * watchdog interval from the event loop. A loop that stalls sends nothing, so
 * systemd kills the service (SIGABRT) and restarts it.
 *
 * Node cannot send on a unix datagram socket, so each message goes through
 * systemd's own `systemd-notify`, which waits until the manager has read it (the
 * sender is a child, hence NotifyAccess=all in the units). Without NOTIFY_SOCKET
 * (a terminal, Docker, npm start) nothing is sent.
 */
export interface ServiceNotifier {
  /** Half of WatchdogSec, or undefined when systemd asked for no watchdog. */
  readonly watchdogIntervalMs: number | undefined;
  /** Sends READY=1 and starts the watchdog pings. */
  ready(): Promise<void>;
  /** Stops the pings (after the service has stopped). */
  close(): void;
}

export function createNotifier(opts: { env: Record<string, string | undefined>; pid: number; log: Logger; command?: string }): ServiceNotifier {
  const socket = opts.env.NOTIFY_SOCKET;
  const usec = Number(opts.env.WATCHDOG_USEC);
  const forPid = opts.env.WATCHDOG_PID === undefined || Number(opts.env.WATCHDOG_PID) === opts.pid;
  const watchdogIntervalMs = socket && usec > 0 && forPid ? Math.max(100, Math.floor(usec / 2000)) : undefined;
  const log = opts.log.child({ component: 'systemd-notify' });
  let timer: NodeJS.Timeout | undefined;

  const send = (state: string) =>
    new Promise<void>((resolve) => {
      const child = spawn(opts.command ?? 'systemd-notify', [state], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { NOTIFY_SOCKET: socket, PATH: opts.env.PATH ?? '/usr/bin:/bin' },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += String(d)));
      child.on('error', (err) => {
        log.warn({ err, state }, 'could not notify systemd');
        resolve();
      });
      child.on('close', (code) => {
        if (code !== 0) log.warn({ state, code, stderr: stderr.trim() }, 'systemd-notify failed');
        resolve();
      });
    });

  return {
    watchdogIntervalMs,
    async ready() {
      if (!socket) return;
      await send('READY=1');
      if (watchdogIntervalMs !== undefined && !timer) {
        timer = setInterval(() => void send('WATCHDOG=1'), watchdogIntervalMs);
        timer.unref();
        log.info({ watchdogIntervalMs }, 'ready; pinging the systemd watchdog');
      }
    },
    close() {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
