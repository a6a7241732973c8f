// Resume tokens in the shape a 7.0 server gives them (src/mongo/db/pipeline/resume_token.cpp):
// `_data` is the upper-case hex of a KeyString V1 (src/mongo/db/storage/key_string.cpp) of
// clusterTime, version 2, tokenType, txnOpIndex, fromInvalidate, the collection UUID (or null),
// the event identifier `{operationType, documentKey | operationDescription}` and, for a fragment
// of a split event, fragmentNum; `_typeBits` says which numbers were doubles, longs or decimals.
// Clients must treat tokens as opaque; only this harness reads them back.
import { Binary, Decimal128, Double, Int32, Long, ObjectId, Timestamp, type Document } from 'bson';
import type { ResumeTokenData } from './changestream.js';
import { CommandError } from './errors.js';

const TOKEN_VERSION = 2;
const EVENT_TOKEN = 128;
const HIGH_WATER_MARK_TOKEN = 0;

// KeyString CTypes (key_string.cpp namespace CType).
const K = {
  end: 0x04,
  minKey: 10,
  undefined: 15,
  nullish: 20,
  numericNaN: 30,
  negativeLargeMagnitude: 31,
  negative1ByteInt: 39,
  zero: 41,
  positive1ByteInt: 43,
  positive8ByteInt: 50,
  positiveLargeMagnitude: 51,
  stringLike: 60,
  object: 70,
  array: 80,
  binData: 90,
  oid: 100,
  boolFalse: 110,
  boolTrue: 111,
  date: 120,
  timestamp: 130,
  regex: 140,
  code: 160,
  maxKey: 240,
} as const;

// TypeBits numeric kinds (key_string.h TypeBits).
const NUMERIC_KIND = { int: 0, double: 1, long: 2, decimal: 3 } as const;

class KeyStringWriter {
  readonly bytes: number[] = [];
  readonly typeBits: number[] = [];

  value(v: unknown): void {
    if (v === null) return this.byte(K.nullish);
    if (v === undefined) return this.byte(K.undefined);
    if (typeof v === 'boolean') return this.byte(v ? K.boolTrue : K.boolFalse);
    if (typeof v === 'string') return this.string(K.stringLike, v, 0);
    if (typeof v === 'number') {
      return Number.isInteger(v) && Math.abs(v) <= 0x7fffffff
        ? this.number(BigInt(v), v, NUMERIC_KIND.int)
        : this.number(null, v, NUMERIC_KIND.double);
    }
    // A Timestamp is a Long to the bson library: test it first.
    if (v instanceof Timestamp) {
      this.byte(K.timestamp);
      return this.uint64((BigInt(v.t) << 32n) | BigInt(v.i));
    }
    if (v instanceof Int32) return this.number(BigInt(v.value), v.value, NUMERIC_KIND.int);
    if (v instanceof Double) return this.number(null, v.value, NUMERIC_KIND.double);
    if (v instanceof Long) return this.number(v.toBigInt(), v.toNumber(), NUMERIC_KIND.long);
    if (v instanceof Decimal128)
      return this.number(null, Number(v.toString()), NUMERIC_KIND.decimal);
    if (v instanceof ObjectId) {
      this.byte(K.oid);
      return this.raw(v.id);
    }
    if (v instanceof Date) {
      this.byte(K.date);
      return this.uint64(BigInt.asUintN(64, BigInt(v.getTime())) ^ (1n << 63n));
    }
    if (v instanceof Binary) {
      const data = v.value();
      this.byte(K.binData);
      if (data.length < 0xff) this.byte(data.length);
      else {
        this.byte(0xff);
        this.raw(uint32(data.length));
      }
      this.byte(v.sub_type);
      return this.raw(data);
    }
    if (v instanceof RegExp) {
      this.byte(K.regex);
      this.cstring(v.source);
      return this.cstring(v.flags);
    }
    if (Array.isArray(v)) {
      this.byte(K.array);
      for (const element of v) this.value(element);
      return this.byte(0);
    }
    const bsontype = (v as { _bsontype?: string })._bsontype;
    if (bsontype === 'MinKey') return this.byte(K.minKey);
    if (bsontype === 'MaxKey') return this.byte(K.maxKey);
    if (bsontype === 'BSONSymbol') return this.string(K.stringLike, String(v), 1);
    if (bsontype === 'Code') return this.string(K.code, (v as { code: string }).code, -1);
    if (bsontype === 'UUID') return this.value(new Binary((v as Binary).buffer, 4));
    this.byte(K.object);
    for (const [name, value] of Object.entries(v as Document)) {
      this.byte(genericType(value));
      this.cstring(name);
      this.value(value);
    }
    this.byte(0);
  }

  /** An integer by sign and byte count, magnitude shifted left one bit (no fraction). */
  private number(integer: bigint | null, approx: number, kind: number): void {
    this.typeBits.push(kind & 1, kind >> 1);
    if (integer === null && Number.isInteger(approx) && Math.abs(approx) < 2 ** 53) {
      integer = BigInt(approx);
    }
    if (integer === null) return this.fractional(approx);
    if (integer === 0n) return this.byte(K.zero);
    const magnitude = (integer < 0n ? -integer : integer) << 1n;
    const length = Math.ceil(magnitude.toString(16).length / 2);
    if (length > 8) return this.fractional(approx);
    const negative = integer < 0n;
    this.byte(negative ? K.negative1ByteInt - (length - 1) : K.positive1ByteInt + (length - 1));
    for (let i = length - 1; i >= 0; i--) {
      const b = Number((magnitude >> BigInt(i * 8)) & 0xffn);
      this.byte(negative ? ~b & 0xff : b);
    }
  }

  /** A number that is no small integer: NaN, or a double by sign and IEEE bits. */
  private fractional(v: number): void {
    if (Number.isNaN(v)) return this.byte(K.numericNaN);
    const bits = Buffer.alloc(8);
    bits.writeDoubleBE(Math.abs(v));
    const encoded = (bits.readBigUInt64BE() << 1n) & ((1n << 64n) - 1n);
    this.byte(v < 0 ? K.negativeLargeMagnitude : K.positiveLargeMagnitude);
    this.uint64(v < 0 ? ~encoded & ((1n << 64n) - 1n) : encoded);
  }

  private string(ctype: number, s: string, symbolBit: number): void {
    if (symbolBit >= 0) this.typeBits.push(symbolBit);
    this.byte(ctype);
    for (const b of Buffer.from(s, 'utf8')) {
      this.byte(b);
      if (b === 0) this.byte(0xff);
    }
    this.byte(0);
  }

  private cstring(s: string): void {
    this.raw(Buffer.from(s, 'utf8'));
    this.byte(0);
  }

  private uint64(v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    this.raw(b);
  }

  byte(b: number): undefined {
    this.bytes.push(b);
    return undefined;
  }

  private raw(data: Uint8Array): void {
    for (const b of data) this.bytes.push(b);
  }
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function genericType(v: unknown): number {
  if (v === null) return K.nullish;
  if (v === undefined) return K.undefined;
  if (typeof v === 'boolean') return 110;
  if (typeof v === 'string') return K.stringLike;
  if (v instanceof Timestamp) return K.timestamp;
  if (typeof v === 'number' || v instanceof Int32 || v instanceof Double || v instanceof Long) {
    return K.numericNaN;
  }
  if (v instanceof Decimal128) return K.numericNaN;
  if (v instanceof ObjectId) return K.oid;
  if (v instanceof Date) return K.date;
  if (v instanceof Binary) return K.binData;
  if (v instanceof RegExp) return K.regex;
  if (Array.isArray(v)) return K.array;
  return K.object;
}

/** TypeBits as a server stores them: absent when all zero, else one byte or 0x80|size + bytes. */
function typeBitsOf(bits: number[]): Binary | undefined {
  if (!bits.includes(1)) return undefined;
  const data = Buffer.alloc(Math.ceil(bits.length / 8));
  bits.forEach((bit, i) => {
    if (bit) data[i >> 3]! |= 1 << (i & 7);
  });
  const serialized =
    data.length === 1 && data[0]! < 0x80
      ? data
      : Buffer.concat([Buffer.from([0x80 | data.length]), data]);
  return new Binary(serialized, 0);
}

export function encodeResumeToken(fields: ResumeTokenData): {
  _data: string;
  _typeBits?: Binary;
} {
  const w = new KeyStringWriter();
  const event = fields.tokenType === 'event';
  w.value(fields.clusterTime);
  w.value(TOKEN_VERSION);
  w.value(event ? EVENT_TOKEN : HIGH_WATER_MARK_TOKEN);
  w.value(event ? fields.txnOpIndex : 0);
  w.value(event && fields.fromInvalidate);
  w.value(event && fields.uuid ? fields.uuid : null);
  if (event) w.value(fields.eventIdentifier ?? {});
  if (event && fields.fragmentNum !== undefined) w.value(fields.fragmentNum);
  w.byte(K.end);
  const typeBits = typeBitsOf(w.typeBits);
  return {
    _data: Buffer.from(w.bytes).toString('hex').toUpperCase(),
    ...(typeBits ? { _typeBits: typeBits } : {}),
  };
}

// ---- reading a token back ----------------------------------------------------------------------

class Truncated extends Error {}

class KeyStringReader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}

  get atEnd(): boolean {
    return this.offset >= this.bytes.length || this.bytes[this.offset] === K.end;
  }

  byte(): number {
    if (this.offset >= this.bytes.length) throw new Truncated();
    return this.bytes[this.offset++]!;
  }

  skip(n: number): Buffer {
    if (this.offset + n > this.bytes.length) throw new Truncated();
    const out = this.bytes.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  private cstring(): void {
    const end = this.bytes.indexOf(0, this.offset);
    if (end < 0) {
      throw new CommandError(
        50816,
        'KeyString format error: Failed to find null terminator in string.',
      );
    }
    this.offset = end + 1;
  }

  /** The next top-level value: numbers, booleans, timestamps and null as values; others skipped. */
  value(): unknown {
    const ctype = this.byte();
    return this.valueOf(ctype);
  }

  private valueOf(ctype: number): unknown {
    switch (ctype) {
      case K.minKey:
      case K.maxKey:
      case K.undefined:
        return undefined;
      case K.nullish:
        return null;
      case K.boolFalse:
        return false;
      case K.boolTrue:
        return true;
      case K.numericNaN:
        return NaN;
      case K.zero:
        return 0;
      case K.date:
        this.skip(8);
        return undefined;
      case K.timestamp: {
        const v = this.skip(8).readBigUInt64BE();
        return new Timestamp({ t: Number(v >> 32n), i: Number(v & 0xffffffffn) });
      }
      case K.oid:
        this.skip(12);
        return undefined;
      case K.stringLike:
      case K.code:
        do this.cstring();
        while (this.bytes[this.offset] === 0xff && ++this.offset);
        return undefined;
      case K.regex:
        this.cstring();
        this.cstring();
        return undefined;
      case K.binData: {
        let size = this.byte();
        if (size === 0xff) size = this.skip(4).readUInt32BE();
        this.byte();
        this.skip(size);
        return undefined;
      }
      case K.object:
        while (this.byte() !== 0) {
          this.cstring();
          this.value();
        }
        return undefined;
      case K.array:
        for (let t = this.byte(); t !== 0; t = this.byte()) this.valueOf(t);
        return undefined;
      case K.negativeLargeMagnitude:
      case K.positiveLargeMagnitude:
      case K.zero - 1: // small magnitudes, between -1 and 1
      case K.zero + 1:
        this.skip(8);
        return undefined;
    }
    if (ctype >= K.negative1ByteInt - 7 && ctype <= K.positive8ByteInt && ctype !== K.zero) {
      const negative = ctype < K.zero;
      const length = negative ? K.negative1ByteInt - ctype + 1 : ctype - K.positive1ByteInt + 1;
      let magnitude = 0n;
      for (const b of this.skip(length))
        magnitude = (magnitude << 8n) | BigInt(negative ? ~b & 0xff : b);
      const n = Number(magnitude >> 1n);
      return negative ? -n : n;
    }
    throw new CommandError(50811, `KeyString format error: Unknown type: ${ctype}`);
  }
}

/**
 * What the harness needs back from a token, with the server's errors for bad ones
 * (ResumeToken::ResumeToken, ResumeToken::getData).
 */
export function decodeResumeToken(token: unknown): ResumeTokenData {
  const data = (token as { _data?: unknown } | null)?._data;
  if (typeof data !== 'string') {
    throw new CommandError(
      40647,
      `Bad resume token: _data of missing or of wrong type. Expected string, got ${JSON.stringify(token)}`,
    );
  }
  const typeBits = (token as { _typeBits?: unknown })._typeBits;
  if (typeBits !== undefined && !(typeBits instanceof Binary && typeBits.sub_type === 0)) {
    throw new CommandError(
      40648,
      `Bad resume token: _typeBits of wrong type ${JSON.stringify(token)}`,
    );
  }
  if (data.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(data)) {
    throw new CommandError(9, 'resume token string was not a valid hex string', 'FailedToParse');
  }
  const reader = new KeyStringReader(Buffer.from(data, 'hex'));
  const invalid = (code: number, message: string): never => {
    throw new CommandError(code, message);
  };
  try {
    if (reader.atEnd) invalid(40649, 'invalid empty resume token');
    const clusterTime = reader.value();
    if (!(clusterTime instanceof Timestamp))
      invalid(50811, 'KeyString format error: no cluster time');
    if (reader.atEnd) invalid(50796, 'Resume Token does not contain version');
    const version = reader.value();
    if (version !== 0 && version !== 1 && version !== 2) {
      invalid(50795, 'Invalid Resume Token: only supports version 0, 1 and 2');
    }
    let tokenType = EVENT_TOKEN;
    if (Number(version) >= 1) {
      if (reader.atEnd) invalid(51055, 'Resume Token does not contain tokenType');
      tokenType = Number(reader.value());
      if (tokenType !== EVENT_TOKEN && tokenType !== HIGH_WATER_MARK_TOKEN) {
        invalid(51057, `Token type ${tokenType} not recognized`);
      }
    }
    if (reader.atEnd) invalid(50793, 'Resume Token does not contain txnOpIndex');
    const txnOpIndex = reader.value();
    if (typeof txnOpIndex !== 'number' || txnOpIndex < 0) {
      invalid(50794, 'Invalid Resume Token: txnOpIndex should be non-negative');
    }
    let fromInvalidate = false;
    if (Number(version) >= 1) {
      if (reader.atEnd) invalid(50872, 'Resume Token does not contain fromInvalidate');
      const flag = reader.value();
      if (typeof flag !== 'boolean')
        invalid(50870, 'Resume Token fromInvalidate is not a boolean.');
      fromInvalidate = flag as boolean;
    }
    let fragmentNum: number | undefined;
    if (!reader.atEnd) {
      reader.value(); // uuid or null
      if (!reader.atEnd) {
        reader.value(); // event identifier
        if (!reader.atEnd) {
          const fragment = reader.value();
          if (typeof fragment !== 'number' || fragment < 0) {
            invalid(7182501, "Resume token 'fragmentNum' must be a non-negative integer.");
          }
          fragmentNum = fragment as number;
        }
      }
    }
    if (!reader.atEnd) invalid(40646, 'invalid oversized resume token');
    return {
      clusterTime: clusterTime as Timestamp,
      tokenType: tokenType === EVENT_TOKEN ? 'event' : 'highWaterMark',
      txnOpIndex: txnOpIndex as number,
      fromInvalidate,
      ...(fragmentNum !== undefined ? { fragmentNum } : {}),
    };
  } catch (error) {
    // A token cut short: the server's BufReader refuses to read past the end.
    if (error instanceof Truncated) {
      throw new CommandError(50811, 'KeyString format error: Unexpected end of input');
    }
    throw error;
  }
}
