import type { IncomingMessage, ServerResponse } from 'node:http';

export type Fault = '429' | '418' | '500' | 'timeout' | 'malformed';

export interface Counter {
  total: number;
  byStatus: Record<number, number>;
}

export function newCounter(): Counter {
  return { total: 0, byStatus: {} };
}

export function send(res: ServerResponse, counter: Counter, status: number, body: string, headers: Record<string, string> = {}): void {
  counter.total++;
  counter.byStatus[status] = (counter.byStatus[status] ?? 0) + 1;
  res.writeHead(status, { 'content-type': body.startsWith('{') || body.startsWith('[') ? 'application/json; charset=utf-8' : 'text/plain', ...headers });
  res.end(body);
}

/** Requests allowed per sliding window, per key (group or app key). Rejected requests are not counted. */
export class WindowCounter {
  private readonly hits = new Map<string, number[]>();
  private readonly windowMs: () => number;
  constructor(windowMs: () => number) {
    this.windowMs = windowMs;
  }

  used(key: string, now: number): number {
    const list = (this.hits.get(key) ?? []).filter((t) => t > now - this.windowMs());
    this.hits.set(key, list);
    return list.length;
  }

  take(key: string, limit: number, now: number): { ok: boolean; remaining: number } {
    const used = this.used(key, now);
    if (used >= limit) return { ok: false, remaining: 0 };
    this.hits.get(key)!.push(now);
    return { ok: true, remaining: limit - used - 1 };
  }
}

/** A queue of faults: each request takes the next one. */
export class FaultQueue {
  private queue: Fault[] = [];
  inject(fault: Fault, count = 1): void {
    for (let i = 0; i < count; i++) this.queue.push(fault);
  }
  next(): Fault | undefined {
    return this.queue.shift();
  }
  clear(): void {
    this.queue = [];
  }
  get pending(): number {
    return this.queue.length;
  }
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Sends the fault; true when the request was answered (or deliberately left hanging). */
export function applyFault(fault: Fault | undefined, res: ServerResponse, counter: Counter, malformedBody: string): boolean {
  switch (fault) {
    case undefined:
      return false;
    case 'timeout':
      // Never answer: the client's deadline must fire. The server drops the socket on close.
      counter.total++;
      return true;
    case 'malformed':
      send(res, counter, 200, malformedBody);
      return true;
    case '429':
      send(res, counter, 429, 'Too many API requests.');
      return true;
    case '418':
      send(res, counter, 418, JSON.stringify({ error: { name: 418, message: 'You have been temporarily banned from the API.' } }));
      return true;
    case '500':
      send(res, counter, 500, JSON.stringify({ error: { name: 500, message: 'Internal server error' } }));
      return true;
  }
}
