import type { Candle } from '../collectors-port.ts';
import type { Signal } from './strategies.ts';

export interface Trade {
  symbol: string;
  entryTime: string;
  entryPrice: number;
  exitTime: string;
  exitPrice: number;
  quantity: number;
  /** Cash after the sale minus cash spent on the purchase, fees included. */
  pnl: number;
  returnPct: number;
  /** 'signal' or 'end' (still open when the candles ran out: closed at the last close). */
  exit: 'signal' | 'end';
}

export interface Summary {
  initialCash: number;
  finalEquity: number;
  totalReturnPct: number;
  maxDrawdownPct: number;
  trades: number;
  winRatePct: number | null;
  /** Mean over standard deviation of per-candle equity returns, not annualised: compares runs of one timeframe. */
  sharpe: number | null;
  candles: number;
}

/**
 * Long-only, all-in account for one symbol: a buy spends all cash at the candle's close, a sale
 * sells everything. Fees are a fraction of the traded value, paid on both sides.
 */
export class Account {
  readonly symbol: string;
  readonly initialCash: number;
  readonly feeRate: number;
  cash: number;
  quantity = 0;
  trades: Trade[] = [];
  candles = 0;
  private entry: { time: Date; price: number; cost: number } | undefined;
  private peak: number;
  private maxDrawdown = 0;
  private lastEquity: number;
  private lastClose: { time: Date; price: number } | undefined;
  // Welford's running mean and variance of per-candle returns.
  private n = 0;
  private mean = 0;
  private m2 = 0;

  constructor(symbol: string, initialCash: number, feeRate: number) {
    this.symbol = symbol;
    this.initialCash = initialCash;
    this.feeRate = feeRate;
    this.cash = initialCash;
    this.peak = initialCash;
    this.lastEquity = initialCash;
  }

  /** Applies a signal at `candle`'s close, then marks the account to that close. */
  apply(candle: Candle, signal: Signal): void {
    this.candles++;
    if (signal === 'buy' && this.quantity === 0 && this.cash > 0) {
      const cost = this.cash;
      this.quantity = (cost * (1 - this.feeRate)) / candle.close;
      this.cash = 0;
      this.entry = { time: candle.time, price: candle.close, cost };
    } else if (signal === 'sell' && this.quantity > 0) {
      this.sell(candle.time, candle.close, 'signal');
    }
    this.lastClose = { time: candle.time, price: candle.close };
    this.mark(this.cash + this.quantity * candle.close);
  }

  private sell(time: Date, price: number, exit: Trade['exit']): void {
    const proceeds = this.quantity * price * (1 - this.feeRate);
    const entry = this.entry!;
    this.trades.push({
      symbol: this.symbol,
      entryTime: entry.time.toISOString(),
      entryPrice: entry.price,
      exitTime: time.toISOString(),
      exitPrice: price,
      quantity: this.quantity,
      pnl: proceeds - entry.cost,
      returnPct: (proceeds / entry.cost - 1) * 100,
      exit,
    });
    this.cash += proceeds;
    this.quantity = 0;
    this.entry = undefined;
  }

  private mark(equity: number): void {
    const r = equity / this.lastEquity - 1;
    this.lastEquity = equity;
    this.n++;
    const delta = r - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (r - this.mean);
    this.peak = Math.max(this.peak, equity);
    this.maxDrawdown = Math.max(this.maxDrawdown, (this.peak - equity) / this.peak);
  }

  /** Closes an open position at the last close (with its fee) and summarises. */
  finish(): Summary {
    if (this.quantity > 0 && this.lastClose) {
      this.sell(this.lastClose.time, this.lastClose.price, 'end');
      // The exit fee lowers equity below the last mark: count it in the drawdown too.
      this.peak = Math.max(this.peak, this.lastEquity);
      this.maxDrawdown = Math.max(this.maxDrawdown, (this.peak - this.cash) / this.peak);
    }
    const std = this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
    return summarise(this.initialCash, this.cash, this.trades, this.maxDrawdown, std > 0 ? this.mean / std : null, this.candles);
  }
}

export function summarise(initialCash: number, finalEquity: number, trades: Trade[], maxDrawdown: number, sharpe: number | null, candles: number): Summary {
  const wins = trades.filter((t) => t.pnl > 0).length;
  return {
    initialCash,
    finalEquity: round(finalEquity, 6),
    totalReturnPct: round((finalEquity / initialCash - 1) * 100, 6),
    maxDrawdownPct: round(maxDrawdown * 100, 6),
    trades: trades.length,
    winRatePct: trades.length > 0 ? round((wins / trades.length) * 100, 6) : null,
    sharpe: sharpe === null ? null : round(sharpe, 6),
    candles,
  };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
