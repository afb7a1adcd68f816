import type { Writable } from 'node:stream';
import { AppError } from '../platform/errors.ts';

/** Writes with backpressure: waits for 'drain' when the stream's buffer is full. */
export async function writeTo(stream: Writable, chunk: Buffer | string): Promise<void> {
  if (stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off('drain', ok);
      stream.off('error', done);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    stream.once('drain', ok);
    stream.once('error', done);
  });
}

const truncated = () => new AppError('backup_unreadable', 'the backup ends early: the file is truncated or damaged');

/**
 * Reads a decompressed backup: lines (the magic, the header, table lines) and each table's
 * COPY data up to its `\.` line, a chunk at a time, so memory holds a chunk and never a table.
 */
export class BackupReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer>;
  private ended = false;
  /** Data lines (rows) of the last table read by copyData. */
  rows = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const next = await this.it.next();
    if (next.done) {
      this.ended = true;
      return false;
    }
    this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, next.value]) : next.value;
    return true;
  }

  /** The next line, without its newline; undefined at the end of the stream. */
  async line(maxBytes = 64 * 1024 * 1024): Promise<string | undefined> {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl >= 0) {
        const text = this.buf.subarray(0, nl).toString('utf8');
        this.buf = this.buf.subarray(nl + 1);
        return text;
      }
      if (this.buf.length > maxBytes) throw new AppError('backup_unreadable', 'the backup has a line longer than any Wombat writes: the file is damaged');
      if (!(await this.fill())) {
        if (this.buf.length > 0) throw truncated();
        return undefined;
      }
    }
  }

  /** One table's COPY text data, in whole rows, up to (not including) its `\.` line. */
  async *copyData(): AsyncGenerator<Buffer> {
    this.rows = 0;
    for (;;) {
      let pos = 0;
      let nl: number;
      while ((nl = this.buf.indexOf(10, pos)) >= 0) {
        // COPY escapes every backslash in data, so a line that is exactly `\.` is the end marker.
        if (nl - pos === 2 && this.buf[pos] === 0x5c && this.buf[pos + 1] === 0x2e) {
          if (pos > 0) yield this.buf.subarray(0, pos);
          this.buf = this.buf.subarray(nl + 1);
          return;
        }
        this.rows++;
        pos = nl + 1;
      }
      if (pos > 0) {
        const whole = this.buf.subarray(0, pos);
        this.buf = this.buf.subarray(pos);
        yield whole;
      }
      if (!(await this.fill())) throw truncated();
    }
  }
}
