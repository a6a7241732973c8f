// Documents kept as the BSON bytes a reply carries. A stored document or image is encoded once,
// when its write happens (MongoDB, too, writes pre- and post-images when the write happens), and
// every reply that carries it copies those bytes instead of cloning and encoding it again, so the
// harness can serve change events and snapshots faster than a client consumes them.
import { type Document } from 'bson';
import { decodeDocument, encodeBson } from './bson.js';

/**
 * A document as BSON bytes, held as consecutive pieces (a change event shares its image's bytes
 * instead of copying them); `serializeReply` embeds them as they are.
 */
export class EncodedDocument {
  readonly length: number;

  constructor(readonly parts: Uint8Array[]) {
    let length = 0;
    for (const part of parts) length += part.length;
    this.length = length;
  }

  /** The document itself, for any reader other than `serializeReply` (bson, mingo). */
  toBSON(): Document {
    const bytes = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    return decodeDocument(bytes);
  }
}

const encodings = new WeakMap<Document, EncodedDocument>();

/**
 * The BSON of a stored document, encoded on first use and kept with it: stored documents and
 * images are never changed in place (a write stores a new object), so the bytes stay true.
 */
export function encoded(doc: Document): EncodedDocument {
  let bytes = encodings.get(doc);
  if (!bytes) {
    bytes = new EncodedDocument([encodeBson(doc)]);
    encodings.set(doc, bytes);
  }
  return bytes;
}

/** A copy of `event` whose encoded fields are documents again (for mingo's pipeline stages). */
export function decodedFields(event: Document): Document {
  const out: Document = {};
  for (const key of Object.keys(event)) {
    const value = event[key];
    out[key] = value instanceof EncodedDocument ? value.toBSON() : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Document {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Whether an encoded document is somewhere in `value` (only plain objects and arrays nest). */
function holdsEncoded(value: unknown): boolean {
  if (value instanceof EncodedDocument) return true;
  if (Array.isArray(value)) return value.some(holdsEncoded);
  if (isPlainObject(value)) {
    for (const key of Object.keys(value)) if (holdsEncoded(value[key])) return true;
  }
  return false;
}

const EMBEDDED_DOCUMENT = 0x03;
const ARRAY = 0x04;

/** Type byte and name of one element (names are cstrings). */
function elementHeader(type: number, name: string): Buffer {
  const header = Buffer.allocUnsafe(Buffer.byteLength(name) + 2);
  header[0] = type;
  header.write(name, 1, 'utf8');
  header[header.length - 1] = 0;
  return header;
}

/** The elements of `fields` (BSON without the length prefix and the final 0). */
function plainElements(fields: Document): Uint8Array {
  const bytes = encodeBson(fields);
  return bytes.subarray(4, bytes.length - 1);
}

/**
 * `container` as BSON pieces (a document, or an array with its index names); the pieces of the
 * encoded documents in it are shared (and added to `shared`), not copied.
 */
function containerParts(container: Document | unknown[], shared?: Set<Uint8Array>): Uint8Array[] {
  const parts: Uint8Array[] = [new Uint8Array(4)];
  let plain: Document | null = null;
  const flush = () => {
    if (plain) parts.push(plainElements(plain));
    plain = null;
  };
  const names = Array.isArray(container)
    ? container.map((_, i) => String(i))
    : Object.keys(container);
  for (const name of names) {
    const value = (container as Document)[name];
    if (value instanceof EncodedDocument) {
      flush();
      parts.push(elementHeader(EMBEDDED_DOCUMENT, name));
      for (const part of value.parts) {
        parts.push(part);
        shared?.add(part);
      }
    } else if ((Array.isArray(value) || isPlainObject(value)) && holdsEncoded(value)) {
      flush();
      parts.push(elementHeader(Array.isArray(value) ? ARRAY : EMBEDDED_DOCUMENT, name));
      for (const part of containerParts(value, shared)) parts.push(part);
    } else {
      (plain ??= {})[name] = value;
    }
  }
  flush();
  parts.push(TERMINATOR);
  let length = 0;
  for (const part of parts) length += part.length;
  new DataView(parts[0]!.buffer).setInt32(0, length, true);
  return parts;
}

const TERMINATOR = new Uint8Array(1);

/**
 * A document holding encoded documents, encoded itself: its own pieces joined between the shared
 * ones (a change event is three pieces around its image, not one per field), the fewer objects a
 * backlog of events keeps in the harness's heap.
 */
export function encodeDocument(doc: Document): EncodedDocument {
  const shared = new Set<Uint8Array>();
  const parts = containerParts(doc, shared);
  const joined: Uint8Array[] = [];
  let own: Uint8Array[] = [];
  const join = () => {
    if (own.length) joined.push(own.length === 1 ? own[0]! : Buffer.concat(own));
    own = [];
  };
  for (const part of parts) {
    if (shared.has(part)) {
      join();
      joined.push(part);
    } else {
      own.push(part);
    }
  }
  join();
  return new EncodedDocument(joined);
}

/** BSON of a reply, with every `EncodedDocument` in it copied from its bytes. */
export function serializeReply(doc: Document): Buffer {
  if (!holdsEncoded(doc)) return Buffer.from(encodeBson(doc));
  return Buffer.concat(containerParts(doc));
}
