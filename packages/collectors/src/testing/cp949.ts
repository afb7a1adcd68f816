/**
 * A cp949 encoder for the fake KIS master files. Node decodes cp949 (WHATWG
 * "euc-kr") but cannot encode it, so the table is built once by decoding every
 * double-byte code.
 */
let table: Map<string, number> | undefined;

function encodeTable(): Map<string, number> {
  if (table) return table;
  table = new Map();
  const decoder = new TextDecoder('euc-kr', { fatal: true });
  for (let lead = 0x81; lead <= 0xfe; lead++) {
    for (let trail = 0x41; trail <= 0xfe; trail++) {
      try {
        const ch = decoder.decode(new Uint8Array([lead, trail]));
        if (ch.length === 1 && !table.has(ch)) table.set(ch, (lead << 8) | trail);
      } catch {
        // Not a valid pair.
      }
    }
  }
  return table;
}

export function encodeCp949(text: string): Uint8Array {
  const t = encodeTable();
  const out: number[] = [];
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (code < 0x80) out.push(code);
    else {
      const pair = t.get(ch);
      if (pair === undefined) throw new Error(`character ${ch} has no cp949 encoding`);
      out.push(pair >> 8, pair & 0xff);
    }
  }
  return Uint8Array.from(out);
}
