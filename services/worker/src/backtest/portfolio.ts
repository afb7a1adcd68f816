import type { Candle } from '../collectors-port.ts';
import type { Signal } from './strategy-kit.ts';

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
  /** 'signal' (the strategy's exit rule), 'stop' (its stop-loss) or 'end' (still open when the candles ran out: closed at the last close). */
  exit: 'signal' | 'stop' | 'end';
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
 * An equity curve marked candle by candle: its peak, its worst drawdown from a peak, and the running
 * mean and variance of its per-mark returns (Welford's method) for the sharpe ratio.
 */
class EquityCurve {
  last: number;
  private peak: number;
  maxDrawdown = 0;
  private n = 0;
  private mean = 0;
  private m2 = 0;

  constructor(initial: number) {
    this.last = initial;
    this.peak = initial;
  }

  mark(equity: number): void {
    const r = equity / this.last - 1;
    this.last = equity;
    this.n++;
    const delta = r - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (r - this.mean);
    this.peak = Math.max(this.peak, equity);
    this.maxDrawdown = Math.max(this.maxDrawdown, (this.peak - equity) / this.peak);
  }

  /** The final equity after closing fees, below the last mark: counted in the drawdown, not as a return. */
  settle(finalEquity: number): void {
    this.maxDrawdown = Math.max(this.maxDrawdown, (this.peak - finalEquity) / this.peak);
  }

  get sharpe(): number | null {
    const std = this.n > 1 ? Math.sqrt(this.m2 / (this.n - 1)) : 0;
    return std > 0 ? this.mean / std : null;
  }
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
  private readonly curve: EquityCurve;
  private lastClose: { time: Date; price: number } | undefined;

  constructor(symbol: string, initialCash: number, feeRate: number) {
    this.symbol = symbol;
    this.initialCash = initialCash;
    this.feeRate = feeRate;
    this.cash = initialCash;
    this.curve = new EquityCurve(initialCash);
  }

  /** Applies a signal at `candle`'s close, then marks the account to that close. */
  apply(candle: Candle, signal: Signal): void {
    this.candles++;
    if (signal === 'buy' && this.quantity === 0 && this.cash > 0) {
      const cost = this.cash;
      this.quantity = (cost * (1 - this.feeRate)) / candle.close;
      this.cash = 0;
      this.entry = { time: candle.time, price: candle.close, cost };
    } else if ((signal === 'sell' || signal === 'stop') && this.quantity > 0) {
      this.sell(candle.time, candle.close, signal === 'stop' ? 'stop' : 'signal');
    }
    this.lastClose = { time: candle.time, price: candle.close };
    this.curve.mark(this.cash + this.quantity * candle.close);
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

  /** Cash plus the position at the last close seen. */
  get equity(): number {
    return this.curve.last;
  }

  /** Closes an open position at the last close (with its fee) and summarises. */
  finish(): Summary {
    if (this.quantity > 0 && this.lastClose) {
      this.sell(this.lastClose.time, this.lastClose.price, 'end');
      this.curve.settle(this.cash);
    }
    return summarise(this.initialCash, this.cash, this.trades, this.curve.maxDrawdown, this.curve.sharpe, this.candles);
  }
}

/** An account's equity after one of its candles: what a portfolio is marked with. */
export interface EquityMark {
  time: number;
  account: number;
  equity: number;
}

/**
 * The accounts of a backtest as one portfolio. At every instant some symbol has a candle, the
 * portfolio is worth the sum of each account's equity at its latest candle (an account without a
 * candle then counts at its last mark; one that never had any, at its idle share of the cash).
 * Its drawdown and sharpe are those of that summed curve, not a mix of the symbols' own.
 */
export class Portfolio {
  readonly initialCash: number;
  private readonly equities: number[];
  private total: number;
  private readonly curve: EquityCurve;

  constructor(initialCash: number, shares: number[]) {
    this.initialCash = initialCash;
    this.equities = [...shares];
    this.total = shares.reduce((a, b) => a + b, 0);
    this.curve = new EquityCurve(this.total);
  }

  /** Marks for a span of time, every account's for that span, in any order. */
  markAll(marks: EquityMark[]): void {
    marks.sort((a, b) => a.time - b.time);
    for (let i = 0; i < marks.length; ) {
      const time = marks[i]!.time;
      for (; i < marks.length && marks[i]!.time === time; i++) {
        const m = marks[i]!;
        this.total += m.equity - this.equities[m.account]!;
        this.equities[m.account] = m.equity;
      }
      this.curve.mark(this.total);
    }
  }

  /** The summary over every account's trades, once each account has finished with `finalEquity`. */
  finish(finalEquity: number, trades: Trade[], candles: number): Summary {
    this.curve.settle(finalEquity);
    return summarise(this.initialCash, finalEquity, trades, this.curve.maxDrawdown, this.curve.sharpe, candles);
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
