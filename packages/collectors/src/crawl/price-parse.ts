/**
 * Reading a price out of the text a shop shows. Pure, and strict on purpose: a
 * price is stored only when the text says it unambiguously; anything else is
 * "unreadable" and kept raw for a person to look at. Never guessed.
 */
export type PriceReading =
  | { kind: 'price'; amount: number; currency: string }
  | { kind: 'sold_out' }
  | { kind: 'unreadable'; reason: string };

export interface PriceHints {
  /** ISO code the source states (or read from a currency field); a symbol in the text must agree. */
  currency?: string | undefined;
  /** Decimal separator the shop uses, when the text alone cannot tell (a single ',' or '.' before three digits). */
  decimalSeparator?: ',' | '.' | undefined;
}

/** Texts that mean "not for sale now"; matched case-insensitively on the whole price text. */
export const SOLD_OUT_PATTERN = /품절|일시\s*품절|재고\s*없음|판매\s*중지|sold\s*out|out\s*of\s*stock|ausverkauft|épuisé|rupture\s+de\s+stock/i;

const CURRENCY_MARKS: readonly [RegExp, string][] = [
  [/₩|원|\bKRW\b/i, 'KRW'],
  [/US\$|\bUSD\b/i, 'USD'],
  [/€|\bEUR\b/i, 'EUR'],
  [/£|\bGBP\b/i, 'GBP'],
  [/円|\bJPY\b/i, 'JPY'],
  [/\bCNY\b|\bRMB\b|元/i, 'CNY'],
  [/\bCHF\b/i, 'CHF'],
];
/** Symbols shared by several currencies: they only confirm a currency the source states. */
const AMBIGUOUS_MARKS: readonly [RegExp, string[]][] = [
  [/\$/, ['USD', 'CAD', 'AUD', 'NZD', 'SGD', 'HKD', 'TWD', 'MXN']],
  [/¥/, ['JPY', 'CNY']],
];

/** ISO 4217 codes of the currencies without minor units that shops here use. */
const NO_MINOR_UNITS = new Set(['KRW', 'JPY', 'VND', 'CLP', 'ISK']);

export function parsePrice(text: string, hints: PriceHints = {}): PriceReading {
  const raw = text.replace(/[\u00a0\u202f\u2009]/g, ' ').replace(/\s+/g, ' ').trim();
  if (raw === '') return { kind: 'unreadable', reason: 'empty price text' };
  const numbers = raw.match(/\d[\d.,' ]*\d|\d/g) ?? [];
  if (numbers.length === 0) {
    if (SOLD_OUT_PATTERN.test(raw)) return { kind: 'sold_out' };
    return { kind: 'unreadable', reason: 'no number in the price text' };
  }
  if (SOLD_OUT_PATTERN.test(raw)) return { kind: 'unreadable', reason: 'price text has both a number and a sold-out mark' };
  // "1,234 원" and "1 234,00 €" are one number with spaces; "was 1,499 now 1,299" is two numbers.
  const tokens = numbers.map((n) => n.trim()).filter((n) => n !== '');
  if (tokens.length !== 1) return { kind: 'unreadable', reason: `several numbers in the price text (${tokens.join(' | ')})` };
  const currency = currencyOf(raw, hints.currency);
  if (!currency.ok) return { kind: 'unreadable', reason: currency.reason };
  const amount = readNumber(tokens[0]!, hints.decimalSeparator);
  if (!amount.ok) return { kind: 'unreadable', reason: amount.reason };
  if (!(amount.value > 0)) return { kind: 'unreadable', reason: 'price is not above zero' };
  if (NO_MINOR_UNITS.has(currency.code) && !Number.isInteger(amount.value)) {
    return { kind: 'unreadable', reason: `${currency.code} has no minor units but the text has decimals` };
  }
  return { kind: 'price', amount: amount.value, currency: currency.code };
}

function currencyOf(raw: string, stated: string | undefined): { ok: true; code: string } | { ok: false; reason: string } {
  const found = new Set<string>();
  for (const [re, code] of CURRENCY_MARKS) if (re.test(raw)) found.add(code);
  // "US$" also matches the bare "$" below; a stated currency decides between look-alikes.
  const withoutUs = raw.replace(/US\$/gi, '');
  const ambiguous = AMBIGUOUS_MARKS.filter(([re]) => re.test(withoutUs)).map(([, codes]) => codes);
  const statedCode = stated?.toUpperCase();
  if (found.size > 1) return { ok: false, reason: `several currencies in the price text (${[...found].join(', ')})` };
  const [fromText] = found;
  if (fromText) {
    if (statedCode && statedCode !== fromText) return { ok: false, reason: `price text says ${fromText} but the source says ${statedCode}` };
    return { ok: true, code: fromText };
  }
  for (const codes of ambiguous) {
    if (!statedCode) return { ok: false, reason: `currency symbol could mean ${codes.join(' or ')}; set the source's currency` };
    if (!codes.includes(statedCode)) return { ok: false, reason: `price text's currency symbol does not fit ${statedCode}` };
  }
  if (statedCode) return { ok: true, code: statedCode };
  return { ok: false, reason: "no currency in the price text and none set for the source" };
}

function readNumber(token: string, decimal: ',' | '.' | undefined): { ok: true; value: number } | { ok: false; reason: string } {
  const seps = [...token.matchAll(/[.,' ]/g)].map((m) => ({ ch: m[0], at: m.index }));
  if (seps.length === 0) return { ok: true, value: Number(token) };
  const last = seps.at(-1)!;
  const kinds = new Set(seps.map((s) => s.ch));
  let decimalAt: number | undefined;
  if (decimal) {
    const decimals = seps.filter((s) => s.ch === decimal);
    if (decimals.length > 1) return { ok: false, reason: `"${token}" has more than one decimal separator "${decimal}"` };
    if (decimals.length === 1) {
      if (decimals[0] !== last) return { ok: false, reason: `"${token}" has a group separator after its decimal separator` };
      decimalAt = last.at;
    }
  } else if (last.ch === '.' || last.ch === ',') {
    const digitsAfter = token.length - last.at - 1;
    const sameKind = seps.filter((s) => s.ch === last.ch).length;
    if (sameKind === 1 && (kinds.size > 1 || digitsAfter !== 3)) {
      // "1.234,56", "1,299.99", "12,5": the last mark is the decimal one.
      decimalAt = last.at;
    } else if (sameKind === 1 && digitsAfter === 3) {
      // "1,234" or "1.234": prices do not carry three decimals, so this is a thousands group.
      decimalAt = undefined;
    }
  }
  const intPart = decimalAt === undefined ? token : token.slice(0, decimalAt);
  const fracPart = decimalAt === undefined ? '' : token.slice(decimalAt + 1);
  if (fracPart !== '' && !/^\d{1,2}$/.test(fracPart)) return { ok: false, reason: `"${token}" has ${fracPart.length} decimals` };
  const groupSeps = new Set([...intPart.matchAll(/[.,' ]/g)].map((m) => m[0]));
  if (groupSeps.size > 1) return { ok: false, reason: `"${token}" mixes group separators` };
  if (groupSeps.size === 1) {
    const groups = intPart.split(/[.,' ]/);
    if (!/^\d{1,3}$/.test(groups[0]!) || groups.slice(1).some((g) => !/^\d{3}$/.test(g))) {
      return { ok: false, reason: `"${token}" is not grouped in threes` };
    }
  }
  const value = Number(`${intPart.replace(/[.,' ]/g, '')}${fracPart ? `.${fracPart}` : ''}`);
  if (!Number.isFinite(value)) return { ok: false, reason: `"${token}" is not a number` };
  return { ok: true, value };
}
