import t from 'tap';
import { nextOccurrences, type ScheduleTrigger } from '@wombat/core/schedules';

/*
 * Property: nextOccurrences agrees with a deliberately naive reference around real
 * DST transitions. The reference shares no code with the schedule module: it walks
 * the timeline in UTC steps of 15 s, reads each step's wall clock from its own
 * Intl.DateTimeFormat, matches the fields with the tiny matcher below and applies
 * the documented policy (services/scheduler-engine/README.md, "Time zones and DST"):
 * - interval patterns (a `*` or `?` in second, minute or hour) fire at every step
 *   whose wall time matches: nothing in a gap, both passes of a fold;
 * - fixed-time patterns and `times` fire once per wall time: at the first step that
 *   shows it, or, for a wall time the clock jumped over, at the step after the jump.
 * Random cases from a seeded PRNG, so a failure is reproducible from its seed.
 */

const STEP_MS = 15_000;
const HOUR_MS = 3_600_000;
const WINDOW_MS = 30 * HOUR_MS;
const SEED = 0x5eed17;
const CASES = 400;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

// ---- wall clock of the reference: one formatter per zone, minute by minute ----

const fmts = new Map<string, Intl.DateTimeFormat>();
/** Wall clock at a whole minute, as a "naive" ms count (the wall time read as UTC). */
function naiveWallAtMinute(ms: number, zone: string): number {
  let f = fmts.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
    fmts.set(zone, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!);
}

/** Wall clock of every 15 s step of [start, end): zones here change offset on whole minutes. */
function wallSteps(zone: string, start: number, end: number): number[] {
  const out: number[] = [];
  for (let m = start; m < end; m += 60_000) {
    const w = naiveWallAtMinute(m, zone);
    for (let s = 0; s < 60_000; s += STEP_MS) out.push(w + s);
  }
  return out;
}

/** Instants (to the minute) where the zone's offset changes in 2026-2027. */
function transitions(zone: string): number[] {
  const out: number[] = [];
  const offset = (ms: number) => naiveWallAtMinute(ms, zone) - ms;
  let prev = offset(Date.UTC(2026, 0, 1));
  for (let h = Date.UTC(2026, 0, 1) + HOUR_MS; h < Date.UTC(2028, 0, 1); h += HOUR_MS) {
    const o = offset(h);
    if (o === prev) continue;
    let lo = h - HOUR_MS;
    let hi = h;
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
      if (offset(mid) === prev) lo = mid;
      else hi = mid;
    }
    out.push(hi);
    prev = o;
  }
  return out;
}

// ---- field matcher of the reference ----

type Field = { any: boolean; values: Set<number> };
function parseField(src: string, lo: number, hi: number): Field {
  const values = new Set<number>();
  for (const part of src.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    let a: number;
    let b: number;
    if (range === '*' || range === '?') [a, b] = [lo, hi];
    else if (range!.includes('-')) [a, b] = range!.split('-').map(Number) as [number, number];
    else [a, b] = [Number(range), stepText === undefined ? Number(range) : hi];
    for (let v = a; v <= b; v += step) values.add(v);
  }
  return { any: src === '*' || src === '?', values };
}

interface Matcher {
  kind: 'fixed-time' | 'interval';
  matches(naive: number): boolean;
}

function cronMatcher(pattern: string): Matcher {
  const f = pattern.split(' ');
  const [sec, min, hour, dom, mon, dow] = f.length === 6 ? f : ['0', ...f];
  const S = parseField(sec!, 0, 59);
  const Mi = parseField(min!, 0, 59);
  const H = parseField(hour!, 0, 23);
  const D = parseField(dom!, 1, 31);
  const Mo = parseField(mon!, 1, 12);
  const W = parseField(dow!, 0, 6);
  return {
    kind: [sec, min, hour].some((x) => x!.includes('*') || x!.includes('?')) ? 'interval' : 'fixed-time',
    matches(naive) {
      const d = new Date(naive);
      if (!S.values.has(d.getUTCSeconds()) || !Mi.values.has(d.getUTCMinutes()) || !H.values.has(d.getUTCHours())) return false;
      if (!Mo.values.has(d.getUTCMonth() + 1)) return false;
      const dm = D.values.has(d.getUTCDate());
      const wm = W.values.has(d.getUTCDay());
      // Vixie: with both day fields restricted, either may match.
      return D.any || W.any ? dm && wm : dm || wm;
    },
  };
}

function timesMatcher(times: string[]): Matcher {
  const set = new Set(times.map((x) => Number(x.slice(0, 2)) * 3600 + Number(x.slice(3, 5)) * 60));
  return { kind: 'fixed-time', matches: (naive) => set.has(Math.floor((naive % 86_400_000) / 1000)) };
}

/** Occurrences the policy names in [start, end), ascending. */
function reference(m: Matcher, start: number, end: number, walls: number[]): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < walls.length; i++) {
    const at = start + i * STEP_MS;
    const w = walls[i]!;
    if (m.kind === 'interval') {
      if (m.matches(w)) out.push(at);
      continue;
    }
    let fire = m.matches(w) && !seen.has(w);
    seen.add(w);
    // The clock jumped: wall times it skipped run here, at the gap's end, merged into one.
    if (i > 0 && w - walls[i - 1]! > STEP_MS) {
      for (let skipped = walls[i - 1]! + STEP_MS; skipped < w; skipped += STEP_MS) if (m.matches(skipped)) fire = true;
    }
    if (fire && at < end) out.push(at);
  }
  return out;
}

// ---- random cases ----

const ZONES = ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'America/Santiago', 'Pacific/Chatham', 'America/St_Johns', 'Asia/Seoul', 'Asia/Kolkata', 'UTC'];

function randomField(rnd: () => number, lo: number, hi: number, near: number[], wildChance: number): string {
  const pick = () => (rnd() < 0.7 && near.length > 0 ? near[Math.floor(rnd() * near.length)]! : lo + Math.floor(rnd() * (hi - lo + 1)));
  const r = rnd();
  if (r < wildChance / 2) return '*';
  if (r < wildChance) return `*/${1 + Math.floor(rnd() * Math.min(20, hi - lo))}`;
  const k = rnd();
  if (k < 0.35) return String(pick());
  if (k < 0.65) return [...new Set([pick(), pick(), pick()])].sort((a, b) => a - b).join(',');
  const a = pick();
  const b = Math.min(hi, a + Math.floor(rnd() * 4));
  if (k < 0.85) return `${a}-${b}`;
  return `${a}-${Math.min(hi, a + 30)}/${2 + Math.floor(rnd() * Math.min(12, (hi - lo) / 2))}`;
}

function randomTrigger(rnd: () => number, wallBefore: number, wallAfter: number): ScheduleTrigger {
  const near = (get: (d: Date) => number) => [...new Set([get(new Date(wallBefore)), get(new Date(wallAfter)), get(new Date(wallBefore - HOUR_MS))])];
  const hours = near((d) => d.getUTCHours());
  if (rnd() < 0.15) {
    const times = new Set<string>();
    for (let n = 1 + Math.floor(rnd() * 3); times.size < n; ) {
      const h = rnd() < 0.8 ? hours[Math.floor(rnd() * hours.length)]! : Math.floor(rnd() * 24);
      const m = rnd() < 0.5 ? [0, 15, 30, 45][Math.floor(rnd() * 4)]! : Math.floor(rnd() * 60);
      times.add(`${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
    }
    return { kind: 'times', times: [...times].sort() };
  }
  const minute = randomField(rnd, 0, 59, [0, 15, 30, 45, 59], 0.3);
  const hour = randomField(rnd, 0, 23, hours, 0.2);
  const dom = rnd() < 0.8 ? '*' : randomField(rnd, 1, 31, near((d) => d.getUTCDate()), 0);
  const month = rnd() < 0.85 ? '*' : randomField(rnd, 1, 12, near((d) => d.getUTCMonth() + 1), 0);
  const dow = rnd() < 0.8 ? '*' : randomField(rnd, 0, 6, near((d) => d.getUTCDay()), 0);
  const five = `${minute} ${hour} ${dom} ${month} ${dow}`;
  if (rnd() < 0.8) return { kind: 'cron', cron: five };
  const seconds = ['0', '30', '0,30', '*/30', '15', '15,45', '0-59/15', '*/15'][Math.floor(rnd() * 8)]!;
  return { kind: 'cron', cron: `${seconds} ${five}` };
}

t.test('occurrences match an independent minute-walking reference around DST transitions', async (t) => {
  const rnd = mulberry32(SEED);
  const windows = new Map<string, { start: number; walls: number[] }>();
  const anchors: { zone: string; at: number }[] = [];
  for (const zone of ZONES) {
    const ts = transitions(zone);
    // Zones without DST get windows at random instants.
    for (const at of ts.length > 0 ? ts : [Date.UTC(2026, 2, 29, 1), Date.UTC(2026, 9, 25, 1)]) anchors.push({ zone, at });
  }
  t.ok(anchors.filter((a) => a.zone === 'Australia/Lord_Howe').length >= 3, 'found Lord Howe transitions');
  let failures = 0;
  let compared = 0;
  let nearChange = 0;
  for (let i = 0; i < CASES && failures < 5; i++) {
    const { zone, at: transition } = anchors[Math.floor(rnd() * anchors.length)]!;
    const start = transition - WINDOW_MS;
    const end = transition + WINDOW_MS;
    const key = `${zone}@${transition}`;
    let win = windows.get(key);
    if (!win) {
      win = { start, walls: wallSteps(zone, start, end) };
      windows.set(key, win);
    }
    const idx = (transition - start) / STEP_MS;
    const trigger = randomTrigger(rnd, win.walls[idx - 1]!, win.walls[idx]!);
    const matcher = trigger.kind === 'cron' ? cronMatcher(trigger.cron) : timesMatcher(trigger.kind === 'times' ? trigger.times : []);
    // Start anywhere from a day before the change to 90 min after it (inside a fold, too), at odd instants.
    const after = transition - Math.floor(rnd() * 26 * HOUR_MS) + Math.floor(rnd() * 1.5 * HOUR_MS) + (rnd() < 0.3 ? Math.floor(rnd() * 1000) : 0);
    const expected = reference(matcher, start, end, win.walls).filter((x) => x > after);
    const want = Math.min(expected.length + 1, 120);
    const got = nextOccurrences({ trigger, timezone: zone }, new Date(after), want).map((d) => d.getTime());
    const inWindow = got.filter((x) => x < end);
    const ascending = got.every((x, j) => j === 0 || x > got[j - 1]!);
    const wanted = expected.slice(0, want);
    const ok = ascending && inWindow.length === wanted.length && inWindow.every((x, j) => x === wanted[j]);
    compared++;
    if (expected.some((x) => Math.abs(x - transition) <= 2 * HOUR_MS)) nearChange++;
    if (!ok) {
      failures++;
      const show = (xs: number[]) => xs.slice(0, 12).map((x) => new Date(x).toISOString());
      t.fail(`case ${i}: ${JSON.stringify(trigger)} in ${zone} after ${new Date(after).toISOString()}`, { expected: show(expected), got: show(inWindow) });
    }
  }
  t.ok(nearChange >= CASES / 4, `${nearChange} cases have occurrences within 2 h of a change`);
  t.equal(failures, 0, `${compared} random cases (seed ${SEED}) agree with the reference`);
});
