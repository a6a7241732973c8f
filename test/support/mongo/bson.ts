// How the harness decodes what clients send: every BSON type kept as the client wrote it, as a
// server stores it. Plain JS numbers serialize back as Int32 when whole, so a whole Double (10.0)
// stays a `Double` instance; Int32s and fractional Doubles become plain numbers, which mingo's
// query and update operators compare and compute with. And how it encodes: never past 17 MiB.
import { BSON, Double, Int32, type Document } from 'bson';

const DESERIALIZE = { promoteValues: false } as const;

export function decodeDocument(bytes: Uint8Array): Document {
  return plainNumbers(BSON.deserialize(bytes, DESERIALIZE)) as Document;
}

/**
 * js-bson serializes into one buffer of 17 MiB (MAXSIZE in its serializer). A string that runs
 * past its end is cut short without an error (Buffer.write writes what fits), and when nothing
 * follows the string the result is well-formed BSON holding the cut string: a document with a
 * 6 MiB field came back with 2,096,399 characters of it. Any write past the end leaves the
 * result within 3 bytes of the buffer's length or longer, so a result that long is refused.
 */
const JS_BSON_BUFFER = 17 * 1024 * 1024;

/**
 * `BSON.serialize`, except that an encoding js-bson may have cut short throws a RangeError (as
 * js-bson itself does when a later write starts past its buffer). Nothing the harness stores or
 * sends is that large: a document is at most 16 MiB, a reply at most 16 MiB + 16 KiB.
 */
export function encodeBson(doc: Document): Uint8Array {
  const bytes = BSON.serialize(doc);
  if (bytes.length >= JS_BSON_BUFFER - 3) {
    throw new RangeError(
      `a BSON encoding of ${bytes.length} bytes reached the end of js-bson's ${JS_BSON_BUFFER}-byte buffer and may be cut short`,
    );
  }
  return bytes;
}

function plainNumbers(value: unknown): unknown {
  if (value instanceof Int32) return value.value;
  if (value instanceof Double) return Number.isInteger(value.value) ? value : value.value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = plainNumbers(value[i]);
    return value;
  }
  if (
    typeof value === 'object' &&
    value !== null &&
    Object.getPrototypeOf(value) === Object.prototype
  ) {
    const doc = value as Document;
    for (const key of Object.keys(doc)) doc[key] = plainNumbers(doc[key]);
  }
  return value;
}
