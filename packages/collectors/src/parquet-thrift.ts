import { createRequire } from 'node:module';
import type * as Thrift from 'thrift';

/**
 * Thrift compact-protocol structs read and written without a schema: every
 * field keeps its id, wire type and value, so a Parquet footer (FileMetaData,
 * OffsetIndex) reads back, gets a few offsets changed, and is written again with
 * every field it had, including fields of newer Parquet versions this code does
 * not know. The wire coding is the Apache Thrift library's TCompactProtocol,
 * loaded on first use (the library brings its RPC transports along).
 */
let lib: typeof Thrift | undefined;
const thrift = () => (lib ??= createRequire(import.meta.url)('thrift') as typeof Thrift);

type TType = Thrift.Thrift.Type;
/** Thrift's type ids (TType), fixed by the protocol; UUID (16) is newer than the library's type definitions. */
const TYPE_IDS = { STOP: 0, BOOL: 2, BYTE: 3, DOUBLE: 4, I16: 6, I32: 8, I64: 10, STRING: 11, STRUCT: 12, MAP: 13, SET: 14, LIST: 15, UUID: 16 };
const T = TYPE_IDS as { readonly [K in keyof typeof TYPE_IDS]: TType };

export type ThriftValue = boolean | number | bigint | string | Buffer | ThriftStruct | ThriftList | ThriftMap;
export interface ThriftField {
  id: number;
  type: TType;
  value: ThriftValue;
}
export interface ThriftStruct {
  fields: ThriftField[];
}
export interface ThriftList {
  elemType: TType;
  set: boolean;
  items: ThriftValue[];
}
export interface ThriftMap {
  keyType: TType;
  valueType: TType;
  entries: [ThriftValue, ThriftValue][];
}

/** Reads one struct from `bytes` (all of it, or throws). */
export function readStruct(bytes: Uint8Array): ThriftStruct {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const transport = new (thrift().TFramedTransport)(buf) as Thrift.TFramedTransport & { readPos: number };
  const p = new (thrift().TCompactProtocol)(transport);
  const s = readValue(p, T.STRUCT, false, 0) as ThriftStruct;
  if (transport.readPos !== buf.length) throw new Error(`thrift struct ends at byte ${transport.readPos} of ${buf.length}`);
  return s;
}

export function writeStruct(s: ThriftStruct): Buffer {
  const out: Buffer[] = [];
  const transport = new (thrift().TBufferedTransport)(undefined, (msg) => msg && out.push(msg));
  const p = new (thrift().TCompactProtocol)(transport);
  writeValue(p, T.STRUCT, s, false);
  p.flush();
  return Buffer.concat(out);
}

const MAX_DEPTH = 64;

function readValue(p: Thrift.TCompactProtocol, type: TType, inCollection: boolean, depth: number): ThriftValue {
  if (depth > MAX_DEPTH) throw new Error('thrift struct nested too deeply');
  switch (type) {
    case T.BOOL:
      // In a collection a bool is a byte of its own (the library's readBool misreads it): kept as read.
      return inCollection ? p.readByte() : p.readBool();
    case T.BYTE:
      return p.readByte();
    case T.I16:
      return p.readI16();
    case T.I32:
      return p.readI32();
    case T.I64:
      return int64ToBigInt(p.readI64());
    case T.DOUBLE:
      return p.readDouble();
    case T.STRING:
      return Buffer.from(p.readBinary());
    case T.UUID:
      return (p as unknown as { readUuid(): string }).readUuid();
    case T.STRUCT: {
      const fields: ThriftField[] = [];
      p.readStructBegin();
      for (;;) {
        const f = p.readFieldBegin();
        if (f.ftype === T.STOP) break;
        fields.push({ id: f.fid, type: f.ftype, value: readValue(p, f.ftype, false, depth + 1) });
        p.readFieldEnd();
      }
      p.readStructEnd();
      return { fields };
    }
    case T.LIST:
    case T.SET: {
      const l = type === T.LIST ? p.readListBegin() : p.readSetBegin();
      const items: ThriftValue[] = [];
      for (let i = 0; i < l.size; i++) items.push(readValue(p, l.etype, true, depth + 1));
      return { elemType: l.etype, set: type === T.SET, items };
    }
    case T.MAP: {
      const m = p.readMapBegin();
      const entries: [ThriftValue, ThriftValue][] = [];
      for (let i = 0; i < m.size; i++) entries.push([readValue(p, m.ktype, true, depth + 1), readValue(p, m.vtype, true, depth + 1)]);
      return { keyType: m.ktype, valueType: m.vtype, entries };
    }
    default:
      throw new Error(`thrift type ${type} cannot be read`);
  }
}

function writeValue(p: Thrift.TCompactProtocol, type: TType, v: ThriftValue, inCollection: boolean): void {
  switch (type) {
    case T.BOOL:
      if (inCollection) p.writeByte(v as number);
      else p.writeBool(v as boolean);
      return;
    case T.BYTE:
      return p.writeByte(v as number);
    case T.I16:
      return p.writeI16(v as number);
    case T.I32:
      return p.writeI32(v as number);
    case T.I64:
      return p.writeI64(bigIntToInt64(v as bigint));
    case T.DOUBLE:
      return p.writeDouble(v as number);
    case T.STRING:
      return p.writeBinary(v as Buffer);
    case T.UUID:
      return (p as unknown as { writeUuid(u: string): void }).writeUuid(v as string);
    case T.STRUCT:
      p.writeStructBegin('');
      for (const f of (v as ThriftStruct).fields) {
        p.writeFieldBegin('', f.type, f.id);
        writeValue(p, f.type, f.value, false);
        p.writeFieldEnd();
      }
      p.writeFieldStop();
      p.writeStructEnd();
      return;
    case T.LIST:
    case T.SET: {
      const l = v as ThriftList;
      if (l.set) p.writeSetBegin(l.elemType, l.items.length);
      else p.writeListBegin(l.elemType, l.items.length);
      for (const item of l.items) writeValue(p, l.elemType, item, true);
      return;
    }
    case T.MAP: {
      const m = v as ThriftMap;
      p.writeMapBegin(m.keyType, m.valueType, m.entries.length);
      for (const [k, val] of m.entries) {
        writeValue(p, m.keyType, k, true);
        writeValue(p, m.valueType, val, true);
      }
      return;
    }
    default:
      throw new Error(`thrift type ${type} cannot be written`);
  }
}

function int64ToBigInt(i: Thrift.Int64): bigint {
  return i.buffer.readBigInt64BE(i.offset);
}

function bigIntToInt64(v: bigint): Thrift.Int64 {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(v);
  return new (thrift().Int64)(b);
}

/** The field `id` of `s`, if present. */
export function field(s: ThriftStruct, id: number): ThriftField | undefined {
  return s.fields.find((f) => f.id === id);
}

/** Sets field `id` of `s` (kept in id order, as writers emit them). */
export function setField(s: ThriftStruct, id: number, type: TType, value: ThriftValue): void {
  const f = field(s, id);
  if (f) {
    f.type = type;
    f.value = value;
    return;
  }
  const at = s.fields.findIndex((x) => x.id > id);
  s.fields.splice(at < 0 ? s.fields.length : at, 0, { id, type, value });
}

export const ThriftType = T;
