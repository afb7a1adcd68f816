/**
 * robots.txt as RFC 9309 reads it: the group for our product token (else `*`),
 * the longest matching Allow/Disallow rule wins, Allow on a tie; `*` and `$` in
 * paths. Crawl-delay is not in the RFC but common: it slows the host down, never
 * speeds it up. Pure: fetching and the status rules live with the crawler.
 */
export interface RobotsRules {
  /** `allow: true` for everything (no robots.txt, or a 4xx). */
  allowAll?: boolean;
  /** `disallowAll: true` when robots.txt could not be read (5xx, unreachable): RFC 9309 §2.3.1.3. */
  disallowAll?: boolean;
  /** Why robots.txt could not be read: its status ("answered 503"), or the host's own failure to answer. */
  unreadable?: { status: number } | { unreachable: string };
  rules: { allow: boolean; pattern: string }[];
  crawlDelaySeconds?: number;
}

export function parseRobots(text: string, productToken: string): RobotsRules {
  const token = productToken.toLowerCase();
  type Group = { agents: string[]; rules: { allow: boolean; pattern: string }[]; delay?: number };
  const groups: Group[] = [];
  let current: Group | undefined;
  let lastWasAgent = false;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/#.*$/, '').trim();
    const m = /^([A-Za-z-]+)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    if (key === 'user-agent') {
      if (!current || !lastWasAgent) {
        current = { agents: [], rules: [] };
        groups.push(current);
      }
      current.agents.push(value.toLowerCase());
      lastWasAgent = true;
      continue;
    }
    lastWasAgent = false;
    if (!current) continue;
    if (key === 'allow' || key === 'disallow') {
      // An empty Disallow allows everything: it adds no rule.
      if (value !== '') current.rules.push({ allow: key === 'allow', pattern: value });
    } else if (key === 'crawl-delay') {
      const n = Number(value);
      if (Number.isFinite(n) && n >= 0) current.delay = n;
    }
  }
  const mine = groups.filter((g) => g.agents.some((a) => a !== '*' && token.startsWith(a)));
  const chosen = mine.length > 0 ? mine : groups.filter((g) => g.agents.includes('*'));
  const delays = chosen.map((g) => g.delay).filter((d): d is number => d !== undefined);
  return {
    rules: chosen.flatMap((g) => g.rules),
    ...(delays.length > 0 ? { crawlDelaySeconds: Math.max(...delays) } : {}),
  };
}

export function isAllowed(rules: RobotsRules, url: URL): boolean {
  if (rules.disallowAll) return false;
  if (rules.allowAll) return true;
  const target = decodeSafe(url.pathname) + url.search;
  if (target === '/robots.txt') return true;
  let best: { allow: boolean; length: number } | undefined;
  for (const r of rules.rules) {
    if (!matches(r.pattern, target)) continue;
    const length = r.pattern.length;
    if (!best || length > best.length || (length === best.length && r.allow)) best = { allow: r.allow, length };
  }
  return best ? best.allow : true;
}

function matches(pattern: string, target: string): boolean {
  return matchRobotsPattern(pattern, target).matched;
}

/**
 * RFC 9309 §2.2.3 matching without a RegExp: a backtracking `.*` per `*` made
 * `/*a*a*a*a*a*a*a*a*b` take half a minute of synchronous CPU on a 55-character
 * path (a host's robots.txt is input we do not control). This walks the pattern
 * once, keeping the set of path positions matched so far (the algorithm of
 * Google's robotstxt parser): at most (pattern + 1) × (path + 1) steps, whatever
 * the pattern. `steps` is returned so tests can hold it to that bound.
 */
export function matchRobotsPattern(rawPattern: string, target: string): { matched: boolean; steps: number } {
  const anchored = rawPattern.endsWith('$');
  const pattern = decodeSafe(anchored ? rawPattern.slice(0, -1) : rawPattern);
  // positions[0..count) are the offsets in target right after a match of the pattern read so far, ascending.
  const positions = new Int32Array(target.length + 1);
  let count = 1;
  let steps = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') {
      // Every offset from the smallest one on now matches.
      const from = positions[0]!;
      count = target.length - from + 1;
      for (let j = 0; j < count; j++) positions[j] = from + j;
      steps += count;
      continue;
    }
    let kept = 0;
    for (let j = 0; j < count; j++) {
      const at = positions[j]!;
      if (at < target.length && target[at] === c) positions[kept++] = at + 1;
    }
    steps += count;
    count = kept;
    if (count === 0) return { matched: false, steps };
  }
  return { matched: anchored ? positions[count - 1] === target.length : true, steps };
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The product token robots.txt groups are matched against: the first word of the User-Agent. */
export function productToken(userAgent: string): string {
  return (/^[A-Za-z0-9_-]+/.exec(userAgent)?.[0] ?? userAgent).toLowerCase();
}
