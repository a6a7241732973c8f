// Documents kept as the BSON bytes a reply carries. A stored document or image is encoded once,
// when its write happens (MongoDB, too, writes pre- and post-images when the write happens), and
// every reply that carries it copies those bytes instead of cloning and encoding it again, so the
// harness can serve change events and snapshots faster than a client consumes them.
import { type Document } from 'bson';
import { decodeDocument, encodeBson } from './bson.js';

/**
 * A document as BSON bytes, held as consecutive pieces (a change event shares its image's bytes
 * instead of copying them); `serializeReply` embeds them as they are. A backlog keeps hundreds of
 * thousands of these, so the common layouts are held without any object of their own: kept bytes
 * as where they are in a shared slab (reserve()), and an event around its image as its own bytes
 * joined, the image, and where it goes. Views of them are made when a reply is built.
 */
export class EncodedDocument {
  readonly length: number;
  /** The slab (or buffer) holding the document's own bytes, or else its pieces. */
  private readonly bytes: ArrayBufferLike | Uint8Array[];
  private readonly offset: number;
  private readonly own: number;
  /** A document embedded `cut` bytes into the own bytes. */
  private readonly inner: EncodedDocument | null;
  private readonly cut: number;

  constructor(parts: Uint8Array[]);
  /** `own` kept bytes, with `inner` embedded at `cut`. */
  constructor(own: Uint8Array, inner: EncodedDocument | null, cut: number);
  /**
   * The same bytes (for a subclass that adds to them), or with `inner` in place of the embedded
   * document (an event around another version of its document: a top-level field, as only the
   * outer length is written anew).
   */
  constructor(same: EncodedDocument, inner?: EncodedDocument);
  constructor(
    bytes: Uint8Array[] | Uint8Array | EncodedDocument,
    inner: EncodedDocument | null = null,
    cut = 0,
  ) {
    if (bytes instanceof EncodedDocument) {
      ({ bytes: this.bytes, offset: this.offset, own: this.own, cut: this.cut } = bytes);
      this.inner = inner ?? bytes.inner;
      if (inner && !bytes.inner) throw new Error('no embedded document to replace');
      this.length = this.own + (this.inner?.length ?? 0);
      return;
    }
    this.inner = inner;
    this.cut = cut;
    if (Array.isArray(bytes)) {
      this.bytes = bytes;
      this.offset = 0;
      let length = 0;
      for (const part of bytes) length += part.length;
      this.own = length;
    } else {
      this.bytes = bytes.buffer;
      this.offset = bytes.byteOffset;
      this.own = bytes.length;
    }
    this.length = this.own + (inner?.length ?? 0);
  }

  /** The pieces, in order. */
  get parts(): Uint8Array[] {
    const bytes = this.bytes;
    if (Array.isArray(bytes)) return bytes;
    const own = new Uint8Array(bytes, this.offset, this.own);
    if (!this.inner) return [own];
    // The length written anew: the embedded document may be another than the one encoded.
    const length = Buffer.allocUnsafe(4);
    length.writeInt32LE(this.length, 0);
    return [length, own.subarray(4, this.cut), ...this.inner.parts, own.subarray(this.cut)];
  }

  /** The document itself, for any reader other than `serializeReply` (bson, mingo). */
  toBSON(): Document {
    const parts = this.parts;
    return decodeDocument(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }
}

const encodings = new WeakMap<Document, EncodedDocument>();

/** The size of the shared buffers that kept bytes are packed into. */
const SLAB_BYTES = 4 * 1024 * 1024;
/** Bytes up to this size go into a slab; larger ones get a buffer of their own. */
const MAX_SLABBED = 64 * 1024;
let slab = new Uint8Array(0);
let slabUsed = 0;

/**
 * Room for `length` bytes kept as long as the harness keeps what holds them (images, events).
 * Small buffers are slices of Node's 8 KiB allocation pool, and one kept slice keeps its whole
 * pool: between the replies and copies each write makes, a backlog of 221,000 events held
 * 860 MB of pools. Packed into large slabs instead, they take what they are.
 */
function reserve(length: number): Uint8Array {
  if (length > MAX_SLABBED) return new Uint8Array(length);
  if (slabUsed + length > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const room = slab.subarray(slabUsed, slabUsed + length);
  slabUsed += length;
  return room;
}

/** `pieces` joined into kept bytes (see reserve()). */
function keep(pieces: Uint8Array[]): Uint8Array {
  if (pieces.length === 1 && pieces[0]!.byteLength === pieces[0]!.buffer.byteLength) {
    return pieces[0]!; // a buffer of its own already
  }
  let length = 0;
  for (const piece of pieces) length += piece.length;
  const kept = reserve(length);
  let at = 0;
  for (const piece of pieces) {
    kept.set(piece, at);
    at += piece.length;
  }
  return kept;
}

/**
 * The BSON of a stored document, encoded on first use and kept with it: stored documents and
 * images are never changed in place (a write stores a new object), so the bytes stay true.
 */
export function encoded(doc: Document): EncodedDocument {
  let bytes = encodings.get(doc);
  if (!bytes) {
    bytes = new EncodedDocument(keep([encodeBson(doc)]), null, 0);
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

/** Headers of embedded documents in arrays by index: a batch of events reuses them. */
const indexHeaders: Buffer[] = [];

function indexHeader(index: number): Buffer {
  return (indexHeaders[index] ??= elementHeader(EMBEDDED_DOCUMENT, String(index)));
}

/** The elements of `fields` (BSON without the length prefix and the final 0). */
function plainElements(fields: Document): Uint8Array {
  const bytes = encodeBson(fields);
  return bytes.subarray(4, bytes.length - 1);
}

/**
 * `container` as BSON pieces (a document, or an array with its index names); the pieces of the
 * encoded documents in it are shared (and added to `shared`, with the document they are of), not
 * copied.
 */
function containerParts(
  container: Document | unknown[],
  shared?: Map<Uint8Array, EncodedDocument>,
  only?: EncodedDocument,
): Uint8Array[] {
  const parts: Uint8Array[] = [new Uint8Array(4)];
  let plain: Document | null = null;
  const flush = () => {
    if (plain) parts.push(plainElements(plain));
    plain = null;
  };
  const array = Array.isArray(container);
  const names = array ? null : Object.keys(container);
  const count = array ? container.length : names!.length;
  for (let i = 0; i < count; i++) {
    const name = array ? String(i) : names![i]!;
    const value = (container as Document)[name];
    if (value instanceof EncodedDocument) {
      flush();
      parts.push(array ? indexHeader(i) : elementHeader(EMBEDDED_DOCUMENT, name));
      for (const part of value.parts) {
        parts.push(part);
        if (only ? value === only : value.length >= MIN_SHARED) shared?.set(part, value);
      }
    } else if ((Array.isArray(value) || isPlainObject(value)) && holdsEncoded(value)) {
      flush();
      parts.push(elementHeader(Array.isArray(value) ? ARRAY : EMBEDDED_DOCUMENT, name));
      for (const part of containerParts(value, shared, only)) parts.push(part);
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
 * A smaller encoded document in a document being encoded is copied into it, not shared: a shared
 * piece costs a view of about 100 bytes of heap, visited by every collection, and a piece of the
 * array of pieces.
 */
const MIN_SHARED = 256;

/**
 * A document holding encoded documents, encoded itself: its own pieces joined between the shared
 * ones (a change event is three pieces around its image, not one per field), the fewer objects a
 * backlog of events keeps in the harness's heap. `kept`: whether it is kept (packed with other
 * kept bytes) or made for one reply. `only`: the one encoded document to share, whatever its
 * size (the others are copied).
 */
export function encodeDocument(
  doc: Document,
  kept = true,
  only?: EncodedDocument,
): EncodedDocument {
  const shared = new Map<Uint8Array, EncodedDocument>();
  const parts = containerParts(doc, shared, only);
  const join = (pieces: Uint8Array[]) => (kept ? keep(pieces) : Buffer.concat(pieces));
  const sharedAt = parts.flatMap((part, i) => (shared.has(part) ? [i] : []));
  if (sharedAt.length === 1) {
    // One shared document of one piece (an event around its image): its own bytes in one piece.
    const at = sharedAt[0]!;
    const before = parts.slice(0, at);
    let cut = 0;
    for (const part of before) cut += part.length;
    return new EncodedDocument(
      join([...before, ...parts.slice(at + 1)]),
      shared.get(parts[at]!)!,
      cut,
    );
  }
  const joined: Uint8Array[] = [];
  let own: Uint8Array[] = [];
  for (const part of parts) {
    if (shared.has(part)) {
      if (own.length) joined.push(join(own));
      own = [];
      joined.push(part);
    } else {
      own.push(part);
    }
  }
  if (own.length) joined.push(join(own));
  return new EncodedDocument(joined);
}

/**
 * BSON of a reply as pieces to be joined once, behind the message header: the bytes of every
 * `EncodedDocument` in it as they are.
 */
export function replyParts(doc: Document): Uint8Array[] {
  if (!holdsEncoded(doc)) return [encodeBson(doc)];
  return containerParts(doc);
}

/** BSON of a reply, with every `EncodedDocument` in it copied from its bytes. */
export function serializeReply(doc: Document): Buffer {
  return Buffer.concat(replyParts(doc));
}
