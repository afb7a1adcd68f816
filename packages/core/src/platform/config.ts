import { ValidationError } from './errors.ts';

/**
 * Configuration schemas. A service declares the variables it reads as a record of
 * fields; `loadConfig` parses them all, collects every problem and throws one
 * ConfigError naming each bad variable. Defaults live in the field definitions and
 * nowhere else.
 */
export interface Field<T> {
  env: string;
  doc: string;
  /** Shown in .env.example and used when the variable is unset or empty. */
  default?: string;
  secret?: boolean;
  /** Where the raw value comes from when it is more than `env[this.env]`; may throw like parse. */
  read?(env: Record<string, string | undefined>): string | undefined;
  parse(raw: string | undefined): T;
}

export class ConfigError extends ValidationError {
  constructor(problems: string[]) {
    super(problems, problems.length === 1 ? `invalid configuration: ${problems[0]}` : `invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Parser<T> = (raw: string) => T;

function field<T>(env: string, doc: string, parse: Parser<T>, opts: { default?: string; secret?: boolean }): Field<T> {
  return {
    env,
    doc,
    ...(opts.default !== undefined ? { default: opts.default } : {}),
    ...(opts.secret ? { secret: true } : {}),
    parse(raw) {
      const value = raw === undefined || raw.trim() === '' ? opts.default : raw.trim();
      if (value === undefined) throw new Error('is required');
      return parse(value);
    },
  };
}

/** A variable that may be unset (undefined); set, `parse` checks it. */
export function optionalField<T>(env: string, doc: string, parse: Parser<T>, opts: { secret?: boolean } = {}): Field<T | undefined> {
  return {
    env,
    doc,
    ...(opts.secret ? { secret: true } : {}),
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return undefined;
      return parse(raw.trim());
    },
  };
}

export function str(env: string, doc: string, opts: { default?: string; secret?: boolean } = {}): Field<string> {
  return field(env, doc, (v) => v, opts);
}

const TIME_OF_DAY = /^([01]\d|2[0-3]):[0-5]\d$/;

/** A time of day HH:MM (24-hour), `dflt` when unset. */
export function timeOfDay(env: string, doc: string, dflt: string): Field<string> {
  return {
    env,
    doc,
    default: dflt,
    parse(raw) {
      const v = raw === undefined || raw.trim() === '' ? dflt : raw.trim();
      if (!TIME_OF_DAY.test(v)) throw new Error(`must be a time of day HH:MM (24-hour), for example ${dflt}`);
      return v;
    },
  };
}

/** A time of day HH:MM, or `off` (null). */
export function timeOfDayOrOff(env: string, doc: string, dflt: string): Field<string | null> {
  return {
    env,
    doc,
    default: dflt,
    parse(raw) {
      const v = raw === undefined || raw.trim() === '' ? dflt : raw.trim();
      if (v === 'off') return null;
      if (!TIME_OF_DAY.test(v)) throw new Error(`must be a time of day HH:MM (24-hour), for example ${dflt}, or off`);
      return v;
    },
  };
}

export function optionalStr(env: string, doc: string, opts: { secret?: boolean } = {}): Field<string | undefined> {
  return optionalField(env, doc, (v) => v, opts);
}

export function int(env: string, doc: string, opts: { default?: number; min?: number; max?: number } = {}): Field<number> {
  const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = opts;
  return field(env, doc, (v) => parseInteger(v, min, max), opts.default === undefined ? {} : { default: String(opts.default) });
}

export function parseInteger(v: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(v)) throw new Error(`must be an integer between ${min} and ${max}`);
  const n = Number(v);
  if (n < min || n > max) throw new Error(`must be an integer between ${min} and ${max}`);
  return n;
}

export function bool(env: string, doc: string, opts: { default: boolean }): Field<boolean> {
  return field(
    env,
    doc,
    (v) => {
      const lower = v.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(lower)) return true;
      if (['false', '0', 'no', 'off'].includes(lower)) return false;
      throw new Error('must be true or false');
    },
    { default: String(opts.default) },
  );
}

export function oneOf<const T extends string>(env: string, doc: string, values: readonly T[], opts: { default?: T } = {}): Field<T> {
  return field(
    env,
    doc,
    (v) => {
      if (!(values as readonly string[]).includes(v)) throw new Error(`must be one of ${values.join(', ')}`);
      return v as T;
    },
    opts.default === undefined ? {} : { default: opts.default },
  );
}

export function list(env: string, doc: string, opts: { default?: string[]; item?: Parser<string> } = {}): Field<string[]> {
  return field(
    env,
    doc,
    (v) => {
      const items = v.split(',').map((s) => s.trim()).filter(Boolean);
      if (items.length === 0) throw new Error('must list at least one value, separated by commas');
      return opts.item ? items.map(opts.item) : items;
    },
    opts.default === undefined ? {} : { default: opts.default.join(',') },
  );
}

export function httpUrl(env: string, doc: string, opts: { default?: string } = {}): Field<string> {
  return field(env, doc, parseHttpUrl, opts);
}

function parseHttpUrl(v: string): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new Error('must be an http(s) URL, for example https://api.upbit.com');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('must be an http(s) URL');
  return v.replace(/\/+$/, '');
}

export function parsePostgresUrl(v: string): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new Error('must be a URL like postgres://user:password@host:5432/database');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error('must start with postgres:// or postgresql://');
  }
  if (!url.hostname && !url.searchParams.get('host')) throw new Error('must name a host, like postgres://user@host:5432/database');
  if (url.pathname.length <= 1) throw new Error('must name a database, like postgres://user@host:5432/database');
  return v;
}

export function postgresUrl(env: string, doc: string): Field<string | undefined> {
  return optionalField(env, doc, parsePostgresUrl, { secret: true });
}

export function timeZone(env: string, doc: string, opts: { default?: string } = {}): Field<string> {
  return field(env, doc, parseTimeZone, opts);
}

export function parseTimeZone(v: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: v });
  } catch {
    throw new Error(`"${v}" is not an IANA time zone, for example Asia/Seoul or UTC`);
  }
  return v;
}

export type Schema = Record<string, Field<unknown>>;
export type ConfigOf<S extends Schema> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

/** Parses every field of `schema` from `env`; throws one ConfigError listing every problem. */
export function loadConfig<S extends Schema>(schema: S, env: Record<string, string | undefined>): ConfigOf<S> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(schema)) {
    let raw = env[f.env];
    try {
      if (f.read) raw = f.read(env);
      out[key] = f.parse(raw);
    } catch (err) {
      const shown = raw === undefined || raw === '' ? '(unset)' : f.secret ? '(value hidden)' : JSON.stringify(raw);
      problems.push(`${f.env}=${shown}: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** Every variable a schema reads, for .env.example checks and docs. */
export function describeSchema(schema: Schema): { env: string; doc: string; default?: string; secret?: boolean }[] {
  return Object.values(schema).map((f) => ({
    env: f.env,
    doc: f.doc,
    ...(f.default !== undefined ? { default: f.default } : {}),
    ...(f.secret ? { secret: true } : {}),
  }));
}
