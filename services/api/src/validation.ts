import { registerAjvFormats } from '@fastify/type-provider-typebox';
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import Value from 'typebox/value';

registerAjvFormats();

const INTEGER = /^-?\d+$/;
const NUMBER = /^-?\d+(\.\d+)?([eE][-+]?\d+)?$/;

/**
 * Query strings and path params arrive as text: a value whose schema is a number,
 * an integer or a boolean is converted only when the text is exactly one ("1.5"
 * is not an integer, "1e400" is not a number), so anything else fails the check.
 */
function convertText(schema: TSchema, value: unknown): unknown {
  const props = (schema as { properties?: Record<string, { type?: string }> }).properties;
  if (!props || value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, v] of Object.entries(out)) {
    const type = props[key]?.type;
    if (typeof v !== 'string') continue;
    if (type === 'integer' && INTEGER.test(v)) out[key] = Number(v);
    else if (type === 'number' && NUMBER.test(v)) out[key] = Number(v);
    else if (type === 'boolean' && (v === 'true' || v === 'false')) out[key] = v === 'true';
  }
  return out;
}

/**
 * Route validation with TypeBox's compiled checks. Query strings and path params
 * are converted from text and get their defaults; a JSON body is checked as sent:
 * a number where a string belongs is a 400, never coerced.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  return (value: unknown) => {
    const converted = httpPart === 'body' ? value : convertText(schema, value);
    const withDefaults = Value.Default(schema, converted);
    if (check.Check(withDefaults)) return { value: withDefaults };
    return { error: [...check.Errors(withDefaults)] as never };
  };
};
