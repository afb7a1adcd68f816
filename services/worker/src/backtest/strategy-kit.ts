import type { Candle } from '../collectors-port.ts';

/** What a strategy says at a candle's close: buy, sell (its exit rule), stop (its stop-loss), or nothing. */
export type Signal = 'buy' | 'sell' | 'stop' | null;

/** A strategy sees candles one at a time, oldest first, and says what to do at that candle's close. */
export interface Strategy {
  next(candle: Candle): Signal;
}

/** Fixed-size window with a running sum. */
export class Window {
  readonly values: number[] = [];
  sum = 0;
  readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  push(v: number): void {
    this.values.push(v);
    this.sum += v;
    if (this.values.length > this.size) this.sum -= this.values.shift()!;
  }
  get full(): boolean {
    return this.values.length === this.size;
  }
  get mean(): number {
    return this.sum / this.values.length;
  }
}

export function intOption(options: Record<string, number>, name: string, def: number, min: number, max: number, problems: string[]): number {
  const v = options[name] ?? def;
  if (!Number.isInteger(v) || v < min || v > max) problems.push(`params.options.${name} must be an integer from ${min} to ${max}`);
  return v;
}

export function numOption(options: Record<string, number>, name: string, def: number, min: number, max: number, problems: string[]): number {
  const v = options[name] ?? def;
  if (!Number.isFinite(v) || v < min || v > max) problems.push(`params.options.${name} must be a number from ${min} to ${max}`);
  return v;
}

export function rejectUnknown(options: Record<string, number>, known: string[], problems: string[]): void {
  for (const k of Object.keys(options)) if (!known.includes(k)) problems.push(`params.options.${k} is unknown; this strategy takes ${known.join(', ')}`);
}
