/**
 * Text PostgreSQL cannot store as sent: NUL (U+0000) is refused in text and jsonb
 * ("unsupported Unicode escape sequence"), and a lone UTF-16 surrogate is refused
 * in jsonb and silently replaced by U+FFFD in text. Inputs are checked, keys as well
 * as values, so the caller gets a 400 naming the place instead of a 500 or a quietly
 * changed value.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why `s` cannot be stored, or undefined when it can. */
export function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return 'contains a NUL character (\\u0000)';
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate (like \\ud800), which is not valid Unicode';
  return undefined;
}

const MAX_DEPTH = 64;

/** The first key or string value under `value` that cannot be stored, as a message saying where. */
export function unstorableText(value: unknown, where: string, depth = 0): string | undefined {
  if (typeof value === 'string') {
    const p = textProblem(value);
    return p ? `${where} ${p}` : undefined;
  }
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return undefined;
  for (const [k, v] of Object.entries(value)) {
    const keyProblem = textProblem(k);
    if (keyProblem) return `${where} has a key ${JSON.stringify(k)} that ${keyProblem}`;
    const inner = unstorableText(v, Array.isArray(value) ? `${where}[${k}]` : `${where}.${k}`, depth + 1);
    if (inner) return inner;
  }
  return undefined;
}
