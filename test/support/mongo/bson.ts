// How the harness decodes what clients send: every BSON type kept as the client wrote it, as a
// server stores it. Plain JS numbers serialize back as Int32 when whole, so a whole Double (10.0)
// stays a `Double` instance; Int32s and fractional Doubles become plain numbers, which mingo's
// query and update operators compare and compute with.
import { BSON, Double, Int32, type Document } from 'bson';

const DESERIALIZE = { promoteValues: false } as const;

export function decodeDocument(bytes: Uint8Array): Document {
  return plainNumbers(BSON.deserialize(bytes, DESERIALIZE)) as Document;
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
