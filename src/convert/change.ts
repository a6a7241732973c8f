// A change event as MongoDB sent it: its BSON, with the few fields the relay reads of every event
// (operation, namespace, times) taken from the bytes, and the rest read only where needed (the
// document key, the full document as row JSON text, the change description). Decoding every
// event into objects cost more than everything else the relay does with it. Pure.
import { BSON, type Document } from 'bson';
import {
  BsonType,
  asBuffer,
  bsonOid,
  DECODE,
  cstringEnd,
  decodeDocument,
  documentEnd,
  idElement,
  int32At,
  isAscii,
  valueEnd,
} from './bson.js';

/** Element headers (type and name) of the documents an insert event built here holds. */
const DOCUMENT_KEY = Buffer.from('\x03documentKey\x00', 'latin1');
const FULL_DOCUMENT = Buffer.from('\x03fullDocument\x00', 'latin1');

export interface Namespace {
  db: string;
  coll?: string;
}

/** Top-level fields the relay reads, by name. */
const FIELDS = [
  '_id',
  'operationType',
  'clusterTime',
  'wallTime',
  'ns',
  'documentKey',
  'fullDocument',
  'updateDescription',
  'splitEvent',
] as const;
type Field = (typeof FIELDS)[number];
/** The fields by the length of their name: a name is compared with the few of its length only. */
const FIELDS_BY_LENGTH: (readonly [Field, Buffer])[][] = [];
for (const name of FIELDS) (FIELDS_BY_LENGTH[name.length] ??= []).push([name, Buffer.from(name)]);

/** Operation names as constants, so that reading one allocates nothing. */
const OPERATIONS = [
  'insert',
  'update',
  'replace',
  'delete',
  'drop',
  'rename',
  'dropDatabase',
  'invalidate',
  'create',
  'createIndexes',
  'dropIndexes',
  'modify',
  'shardCollection',
  'reshardCollection',
  'refineCollectionShardKey',
].map((name) => [name, Buffer.from(name)] as const);

function sameBytes(src: Uint8Array, start: number, end: number, name: Uint8Array): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) if (src[start + i] !== name[i]) return false;
  return true;
}

function fieldAt(src: Uint8Array, start: number, end: number): Field | null {
  const candidates = FIELDS_BY_LENGTH[end - start];
  if (candidates === undefined) return null;
  for (const [name, bytes] of candidates) if (sameBytes(src, start, end, bytes)) return name;
  return null;
}

/** The string value at `at` (int32 length, UTF-8, NUL). */
function stringAt(src: Buffer, at: number): string {
  const length = int32At(src, at);
  return src.toString('utf8', at + 4, at + 3 + length);
}

const DATA = Buffer.from('_data');

/**
 * The resume token at `start`. Tokens are `{_data: <hex string>}`, read here without the
 * decoder; one with more fields (`_typeBits`) is decoded.
 */
function tokenAt(src: Buffer, start: number, end: number): Document {
  const nameAt = start + 5;
  const valueAt = nameAt + DATA.length + 1;
  if (
    src[start + 4] === BsonType.String &&
    sameBytes(src, nameAt, nameAt + DATA.length, DATA) &&
    src[nameAt + DATA.length] === 0 &&
    valueAt + 4 + int32At(src, valueAt) === end - 1 &&
    isAscii(src, valueAt + 4, end - 2)
  ) {
    return { _data: src.toString('latin1', valueAt + 4, end - 2) };
  }
  return decodeDocument(src, start);
}

function operationAt(src: Buffer, at: number): string {
  const length = int32At(src, at) - 1;
  for (const [name, bytes] of OPERATIONS) {
    if (sameBytes(src, at + 4, at + 4 + length, bytes)) return name;
  }
  return stringAt(src, at);
}

// Events of one collection share a namespace: the last one read is reused while its bytes match.
let lastNsBytes: Buffer | null = null;
let lastNs: Namespace | undefined;

function namespaceAt(src: Buffer, start: number, end: number): Namespace | undefined {
  if (lastNsBytes && src.compare(lastNsBytes, 0, lastNsBytes.length, start, end) === 0) {
    return lastNs;
  }
  const ns = decodeDocument(src, start) as Namespace;
  lastNsBytes = Buffer.from(src.subarray(start, end));
  lastNs = Object.freeze({ db: ns.db, ...(ns.coll === undefined ? {} : { coll: ns.coll }) });
  return lastNs;
}

export class ChangeEvent {
  readonly operationType: string;
  readonly ns: Namespace | undefined;
  /** `wallTime` in milliseconds, or null. */
  readonly wallTimeMs: number | null;
  /** `clusterTime`'s seconds, or null. */
  readonly clusterTimeSeconds: number | null;
  /** `splitEvent` of a fragment ($changeStreamSplitLargeEvent), or null. */
  readonly splitEvent: { fragment: number; of: number } | null;
  /** Offsets of the documents the relay may read, -1 when absent (or not a document). */
  private readonly documentKeyAt: number = -1;
  private readonly fullDocumentAt: number = -1;
  private readonly updateDescriptionAt: number = -1;
  /** Where the resume token (`_id`, a document) lies, -1 without one; decoded when asked. */
  private readonly idAt: number = -1;
  private readonly idEnd: number = -1;
  private token: Document | undefined;
  readonly bytes: Buffer;

  /** `bytes`: the event's BSON (as the driver hands it out with `raw: true`). */
  constructor(bytes: Uint8Array) {
    const src = asBuffer(bytes);
    this.bytes = src;
    const end = documentEnd(src, 0);
    let operation = '';
    let ns: Namespace | undefined;
    let wallTime: number | null = null;
    let clusterTime: number | null = null;
    let split: { fragment: number; of: number } | null = null;
    let i = 4;
    while (i < end - 1) {
      const type = src[i]!;
      const nameEnd = cstringEnd(src, i + 1, end);
      const at = nameEnd + 1;
      const next = valueEnd(src, type, at, end);
      const field = fieldAt(src, i + 1, nameEnd);
      if (field !== null) {
        switch (field) {
          case '_id':
            if (type === BsonType.Object) {
              this.idAt = at;
              this.idEnd = next;
            }
            break;
          case 'operationType':
            if (type === BsonType.String) operation = operationAt(src, at);
            break;
          case 'clusterTime':
            if (type === BsonType.Timestamp) clusterTime = int32At(src, at + 4) >>> 0;
            break;
          case 'wallTime':
            if (type === BsonType.Date) {
              wallTime = int32At(src, at + 4) * 2 ** 32 + (int32At(src, at) >>> 0);
            }
            break;
          case 'ns':
            if (type === BsonType.Object) ns = namespaceAt(src, at, next);
            break;
          case 'documentKey':
            if (type === BsonType.Object) this.documentKeyAt = at;
            break;
          case 'fullDocument':
            if (type === BsonType.Object) this.fullDocumentAt = at;
            break;
          case 'updateDescription':
            if (type === BsonType.Object) this.updateDescriptionAt = at;
            break;
          case 'splitEvent':
            if (type === BsonType.Object) {
              const { fragment, of } = decodeDocument(src, at);
              split = { fragment: Number(fragment), of: Number(of) };
            }
            break;
        }
      }
      i = next;
    }
    this.operationType = operation;
    this.ns = ns;
    this.wallTimeMs = wallTime;
    this.clusterTimeSeconds = clusterTime;
    this.splitEvent = split;
  }

  /** An event given as a document (replay, dead letters, tests). */
  static fromDocument(event: Document): ChangeEvent {
    // As `rowJson` writes it, an undefined value is a null (BSON's default drops the field). An
    // event over bson's 17 MiB serialization buffer (a large split event) needs a larger one.
    const options = { ignoreUndefined: false };
    const size = BSON.calculateObjectSize(event, options);
    if (size > 16 * 1024 * 1024) BSON.setInternalBufferSize(size);
    return new ChangeEvent(BSON.serialize(event, options));
  }

  /**
   * The insert event a copied document stands for (the snapshot): `{operationType, ns,
   * documentKey: {_id}, fullDocument}`, built from the document's bytes.
   */
  static insertOf(ns: Namespace, document: Uint8Array): ChangeEvent {
    const head = BSON.serialize({ operationType: 'insert', ns });
    const id = idElement(document);
    const idBytes = id ? document.subarray(id.start, id.end) : new Uint8Array(0);
    const size =
      head.length - 1 + (DOCUMENT_KEY.length + 4 + idBytes.length + 1) + FULL_DOCUMENT.length;
    const bytes = Buffer.allocUnsafe(size + document.length + 1);
    bytes.set(head.subarray(0, head.length - 1), 0);
    let at = head.length - 1;
    bytes.set(DOCUMENT_KEY, at);
    at += DOCUMENT_KEY.length;
    bytes.writeInt32LE(4 + idBytes.length + 1, at);
    bytes.set(idBytes, at + 4);
    at += 4 + idBytes.length;
    bytes[at++] = 0;
    bytes.set(FULL_DOCUMENT, at);
    at += FULL_DOCUMENT.length;
    bytes.set(document, at);
    at += document.length;
    bytes[at++] = 0;
    bytes.writeInt32LE(at, 0);
    return new ChangeEvent(bytes);
  }

  /**
   * The resume token (`_id`), decoded at the first ask: the relay needs the token of the last
   * event it reads, not of every one.
   */
  get _id(): Document | undefined {
    if (this.token === undefined && this.idAt >= 0) {
      this.token = tokenAt(this.bytes, this.idAt, this.idEnd);
    }
    return this.token;
  }

  /** Its BSON size. */
  get size(): number {
    return this.bytes.length;
  }

  /** When it happened in the source: `wallTime` (ms) where present, else `clusterTime`. */
  get timeMs(): number | null {
    if (this.wallTimeMs !== null) return this.wallTimeMs;
    return this.clusterTimeSeconds === null ? null : this.clusterTimeSeconds * 1000;
  }

  get hasResumeToken(): boolean {
    return this.idAt >= 0;
  }

  get hasDocumentKey(): boolean {
    return this.documentKeyAt >= 0;
  }

  /** The row key of `documentKey._id` (DESIGN.md §1), null without one. */
  oid(): string | null {
    return this.documentKeyAt < 0 ? null : bsonOid(this.bytes, this.documentKeyAt);
  }

  /** Where `fullDocument` starts in `bytes`, or -1 without one (absent or null). */
  get fullDocumentOffset(): number {
    return this.fullDocumentAt;
  }

  /** `updateDescription`, decoded, or null. */
  updateDescription(): Document | null {
    return this.updateDescriptionAt < 0
      ? null
      : decodeDocument(this.bytes, this.updateDescriptionAt);
  }

  /**
   * The whole event, decoded as the driver decodes it (dead letters, control events, `tail`); a
   * string that is not UTF-8 (a dead letter's reason) is decoded with replacement characters.
   */
  toDocument(): Document {
    return BSON.deserialize(this.bytes, { ...DECODE, validation: { utf8: false } });
  }
}
