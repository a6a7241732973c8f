// In-memory databases, collections and the oplog of the harness primary. Query matching and
// update operators come from mingo; this file adds what a replica set adds on top: `_id`
// uniqueness, an ordered oplog with cluster times, and change descriptions of each write.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { BSON, Double, Long, ObjectId, Timestamp, UUID, type Document } from 'bson';
import { Aggregator, Query, update as applyUpdate } from 'mingo';
import { encoded, type EncodedDocument } from './encoded.js';
import { decodeDocument, encodeBson } from './bson.js';
import { CommandError } from './errors.js';

export type OplogOp =
  | 'insert'
  | 'update'
  | 'replace'
  | 'delete'
  | 'drop'
  | 'rename'
  | 'dropDatabase'
  | 'create'
  | 'createIndexes'
  | 'dropIndexes'
  | 'modify'
  | 'noop';

export interface UpdateDescription {
  updatedFields: Document;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
  /** Each ambiguous path as its parts, array indices as numbers (see disambiguate()). */
  disambiguatedPaths: Document;
}

export interface OplogEntry {
  ts: Timestamp;
  /** Milliseconds since the epoch: a number, not a Date object per entry. */
  wallTime: number;
  /**
   * Position inside an `applyOps` entry (a transaction or a batched multi-document write): all
   * its operations share one `ts` and are told apart by this index, as in the server's
   * resume token (`txnOpIndex`). Absent for a write logged on its own.
   */
  txnOpIndex?: number;
  op: OplogOp;
  db: string;
  coll?: string;
  /** The collection's UUID (the oplog's `ui`); reported as `collectionUUID`. */
  uuid?: UUID;
  documentKey?: Document;
  /**
   * insert/replace: the new document; update: the post-image. Images are kept as their BSON
   * only: a backlog of writes to the same documents would otherwise hold every version as
   * objects (about 2 GB for 221 000 events), and collecting that heap made the harness, not
   * the client, the limit of a benchmark.
   */
  postImage?: EncodedDocument;
  preImage?: EncodedDocument;
  /**
   * update: `updatedFields`, `removedFields` and `truncatedArrays` as BSON, kept as bytes like
   * the images; `disambiguatedPaths` (shown with showExpandedEvents) apart, when there are any.
   */
  updateDescription?: EncodedDocument;
  disambiguatedPaths?: Document;
  to?: { db: string; coll: string };
  /** DDL events: what the server reports as `operationDescription` (showExpandedEvents). */
  operationDescription?: Document;
  /** modify: the collection's options before the change. */
  stateBeforeChange?: Document;
}

type EntryInput = Omit<OplogEntry, 'ts' | 'wallTime' | 'txnOpIndex'>;

const names = new Map<string, string>();

/** One string for each name: each request decodes its own copy of it. */
function interned(name: string): string {
  let same = names.get(name);
  if (same === undefined) {
    same = name;
    names.set(name, name);
  }
  return same;
}

/**
 * Every entry with the same fields in the same order, absent ones undefined: V8 then gives them
 * one hidden class, where entries spread from their inputs had one each (a backlog of 221,000
 * entries, 221,000 hidden classes kept and marked by every full collection).
 */
function oplogEntry(
  input: EntryInput,
  ts: Timestamp,
  wallTime: number,
  txnOpIndex: number | undefined,
): OplogEntry {
  return {
    ts,
    wallTime,
    txnOpIndex,
    op: input.op,
    db: interned(input.db),
    coll: input.coll === undefined ? undefined : interned(input.coll),
    uuid: input.uuid,
    documentKey: input.documentKey,
    postImage: input.postImage,
    preImage: input.preImage,
    updateDescription: input.updateDescription,
    disambiguatedPaths: input.disambiguatedPaths,
    to: input.to,
    operationDescription: input.operationDescription,
    stateBeforeChange: input.stateBeforeChange,
  };
}

const ID_INDEX = { v: 2, key: { _id: 1 }, name: '_id_' } as const;

export interface CollectionOptions {
  changeStreamPreAndPostImages?: { enabled: boolean };
  [key: string]: unknown;
}

export class Collection {
  readonly uuid = new UUID();
  /** Documents by `_id` key, in insertion (natural) order. */
  readonly docs = new Map<string, Document>();
  /** Secondary index specs by name (`_id_` is implicit). */
  readonly indexes = new Map<string, Document>();
  constructor(
    /** Changes on rename: a renamed collection keeps its UUID, as on a real server. */
    public name: string,
    public options: CollectionOptions = {},
  ) {}

  get imagesEnabled(): boolean {
    return this.options.changeStreamPreAndPostImages?.enabled === true;
  }
}

/** BSONObjMaxUserSize (src/mongo/bson/bsonobj.h): the largest document a write stores. */
export const MAX_USER_DOCUMENT_BYTES = 16 * 1024 * 1024;

/**
 * The size of a document about to be stored: its encoding, which the write's change events then
 * reuse, or for a document past what js-bson encodes, its computed size.
 */
function storedSize(doc: Document): number {
  try {
    return encoded(doc).length;
  } catch (error) {
    if (error instanceof RangeError) return BSON.calculateObjectSize(doc);
    throw error;
  }
}

/** A deep copy that keeps every BSON type (structuredClone would drop the classes). */
export function cloneDocument<T extends Document>(doc: T): T {
  return decodeDocument(encodeBson(doc)) as T;
}

/** MongoDB compares numbers across types: 1, 1.0 and Long(1) are the same `_id`. */
export function idKey(id: unknown): string {
  if (id instanceof ObjectId) return `o:${id.toHexString()}`;
  if (typeof id === 'string') return `s:${id}`;
  if (typeof id === 'number') return `n:${id}`;
  if (id instanceof Double) return `n:${id.value}`;
  if (id instanceof Long) return `n:${id.toString()}`;
  if (typeof id === 'bigint') return `n:${id.toString()}`;
  return `x:${Buffer.from(BSON.serialize({ v: id })).toString('hex')}`;
}

function sameValue(a: unknown, b: unknown): boolean {
  return Buffer.from(encodeBson({ v: a })).equals(encodeBson({ v: b }));
}

function isPlainObject(v: unknown): v is Document {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.getPrototypeOf(v) === Object.prototype
  );
}

/**
 * The change description MongoDB reports for an update: new or changed fields by dotted path
 * (array elements by index), removed fields, and arrays that were shortened.
 */
export function describeUpdate(pre: Document, post: Document): UpdateDescription {
  const description: UpdateDescription = {
    updatedFields: {},
    removedFields: [],
    truncatedArrays: [],
    disambiguatedPaths: {},
  };
  diffObject(pre, post, [], description);
  return description;
}

/**
 * Paths a client cannot split on dots unaided, as the server's change_stream_document_diff_parser
 * decides: a field name containing a dot, or a numeric field name below the top level (it could
 * be an array index). Such a path is listed with its parts, array indices as integers.
 */
function disambiguate(parts: PathPart[], out: UpdateDescription): void {
  let ambiguous = false;
  for (const [i, part] of parts.entries()) {
    if (typeof part === 'number') continue;
    if ((i > 0 && /^(0|[1-9][0-9]*)$/.test(part)) || part.includes('.')) ambiguous = true;
    if (ambiguous) break;
  }
  if (ambiguous) out.disambiguatedPaths[parts.join('.')] = [...parts];
}

/** A path into a document: field names, and indices for array elements. */
type PathPart = string | number;

function diffObject(pre: Document, post: Document, path: PathPart[], out: UpdateDescription): void {
  for (const key of Object.keys(pre)) {
    if (!(key in post)) addPath(out.removedFields, [...path, key], out);
  }
  for (const [key, value] of Object.entries(post)) {
    const at = [...path, key];
    if (!(key in pre)) {
      setUpdated(at, value, out);
      continue;
    }
    diffValue(pre[key], value, at, out);
  }
}

function addPath(list: string[], parts: PathPart[], out: UpdateDescription): void {
  list.push(parts.join('.'));
  disambiguate(parts, out);
}

function setUpdated(parts: PathPart[], value: unknown, out: UpdateDescription): void {
  out.updatedFields[parts.join('.')] = value;
  disambiguate(parts, out);
}

function diffValue(
  before: unknown,
  after: unknown,
  path: PathPart[],
  out: UpdateDescription,
): void {
  if (isPlainObject(before) && isPlainObject(after)) {
    diffObject(before, after, path, out);
  } else if (Array.isArray(before) && Array.isArray(after)) {
    diffArray(before, after, path, out);
  } else if (!sameValue(before, after)) {
    setUpdated(path, after, out);
  }
}

function diffArray(
  before: unknown[],
  after: unknown[],
  path: PathPart[],
  out: UpdateDescription,
): void {
  const common = Math.min(before.length, after.length);
  const changedInPlace: number[] = [];
  for (let i = 0; i < common; i++) {
    if (!sameValue(before[i], after[i])) changedInPlace.push(i);
  }
  // Many changed elements are reported as the whole array, as the server does for rewrites.
  if (changedInPlace.length > common / 2 && changedInPlace.length > 1) {
    setUpdated(path, after, out);
    return;
  }
  if (after.length < before.length) {
    out.truncatedArrays.push({ field: path.join('.'), newSize: after.length });
    disambiguate(path, out);
  }
  for (const i of changedInPlace) diffValue(before[i], after[i], [...path, i], out);
  for (let i = before.length; i < after.length; i++) setUpdated([...path, i], after[i], out);
}

/** An update's description as its oplog entry keeps it. */
function describedUpdate(
  pre: Document,
  post: Document,
): Pick<OplogEntry, 'updateDescription' | 'disambiguatedPaths'> {
  const { disambiguatedPaths, ...description } = describeUpdate(pre, post);
  return {
    updateDescription: encoded(description),
    ...(Object.keys(disambiguatedPaths).length ? { disambiguatedPaths } : {}),
  };
}

function isOperatorUpdate(u: Document): boolean {
  const keys = Object.keys(u);
  return keys.length > 0 && keys.every((k) => k.startsWith('$'));
}

/** Fields of an upsert's query that a real server copies into the new document. */
function equalityFields(query: Document): Document {
  const seed: Document = {};
  for (const [key, value] of Object.entries(query)) {
    if (key.startsWith('$')) continue;
    if (isPlainObject(value) && Object.keys(value).some((k) => k.startsWith('$'))) {
      if ('$eq' in value) seed[key] = value.$eq;
      continue;
    }
    seed[key] = value;
  }
  return seed;
}

function withIdFirst(doc: Document, id: unknown): Document {
  const { _id: _ignored, ...rest } = doc;
  return { _id: id, ...rest };
}

export interface WriteError {
  index: number;
  code: number;
  errmsg: string;
}

export interface UpdateStatement {
  q: Document;
  u: Document | Document[];
  upsert?: boolean;
  multi?: boolean;
  arrayFilters?: Document[];
}

export interface MergeSpec {
  whenMatched: 'merge' | 'replace' | 'keepExisting' | 'fail';
  whenNotMatched: 'insert' | 'discard' | 'fail';
}

export interface UpdateResult {
  n: number;
  nModified: number;
  upserted?: unknown;
  /** The documents before and after, for findAndModify. */
  before?: Document | null;
  after?: Document | null;
}

const INTERNAL_DATABASES = new Set(['admin', 'config', 'local']);

export class Store extends EventEmitter {
  readonly databases = new Map<string, Map<string, Collection>>();
  readonly oplog: OplogEntry[] = [];
  /**
   * The entries' change events as BSON once encoded, by the number of their shape (see
   * changestream.ts) and then by the entry's place in the oplog: an array per shape, not one
   * per entry.
   */
  readonly encodedEvents: (EncodedDocument | null | undefined)[][] = [];
  /** The newest discarded entry: resuming before it fails with ChangeStreamHistoryLost (286). */
  discardedThrough: Timestamp | null = null;
  private lastTime = new Timestamp({ t: Math.floor(Date.now() / 1000), i: 0 });

  constructor() {
    super();
    this.setMaxListeners(0);
  }

  get clusterTime(): Timestamp {
    return this.lastTime;
  }

  private tick(): Timestamp {
    const now = Math.floor(Date.now() / 1000);
    this.lastTime =
      now > this.lastTime.t
        ? new Timestamp({ t: now, i: 1 })
        : new Timestamp({ t: this.lastTime.t, i: this.lastTime.i + 1 });
    return this.lastTime;
  }

  /**
   * Oplog entries share their images' bytes with the collections' documents: a stored document
   * is never changed in place (every write stores a new object, and readers copy what they
   * send), and its BSON is encoded once, when it is written (`encoded`), as MongoDB writes
   * images with the write.
   */
  private record(entry: EntryInput): void {
    this.oplog.push(oplogEntry(entry, this.tick(), Date.now(), undefined));
    this.emit('oplog');
  }

  /**
   * Several operations logged as one `applyOps` entry: one cluster time, told apart by
   * `txnOpIndex`, as a transaction or a batched multi-document write is.
   */
  private recordGroup(entries: EntryInput[]): void {
    if (entries.length === 0) return;
    const ts = this.tick();
    const wallTime = Date.now();
    for (const [txnOpIndex, entry] of entries.entries()) {
      this.oplog.push(oplogEntry(entry, ts, wallTime, txnOpIndex));
    }
    this.emit('oplog');
  }

  /**
   * A no-op oplog entry, as the primary's periodic no-op writer logs one when nothing else was
   * written for `periodicNoopIntervalSecs` (src/mongo/db/repl/noop_writer.cpp): no stream shows
   * it, but every stream's postBatchResumeToken moves past it.
   */
  writeNoop(): void {
    this.record({ op: 'noop', db: '' });
  }

  /** Forget the oplog up to now: resuming from a point before its last entry fails with 286. */
  discardHistory(): void {
    const last = this.oplog.at(-1);
    if (last) this.discardedThrough = last.ts;
    this.oplog.length = 0;
    this.encodedEvents.length = 0;
  }

  collection(db: string, name: string): Collection | undefined {
    return this.databases.get(db)?.get(name);
  }

  /** The collection, created implicitly as a write would. */
  ensureCollection(db: string, name: string, options: CollectionOptions = {}): Collection {
    if (INTERNAL_DATABASES.has(db) && db !== 'admin') {
      throw new CommandError(73, `cannot write to '${db}.${name}'`, 'InvalidNamespace');
    }
    let database = this.databases.get(db);
    if (!database) {
      database = new Map();
      this.databases.set(db, database);
    }
    let collection = database.get(name);
    if (!collection) {
      collection = new Collection(name, options);
      database.set(name, collection);
      // The oplog's create entry holds the options and the _id index spec (OpObserverImpl).
      this.record({
        op: 'create',
        db,
        coll: name,
        uuid: collection.uuid,
        operationDescription: { ...cloneDocument(options), idIndex: { ...ID_INDEX } },
      });
    }
    return collection;
  }

  createCollection(db: string, name: string, options: CollectionOptions): void {
    if (this.collection(db, name)) {
      throw new CommandError(48, `Collection ${db}.${name} already exists.`, 'NamespaceExists');
    }
    this.ensureCollection(db, name, options);
  }

  dropCollection(db: string, name: string): boolean {
    const database = this.databases.get(db);
    const collection = database?.get(name);
    if (!collection) return false;
    database!.delete(name);
    this.record({ op: 'drop', db, coll: name, uuid: collection.uuid });
    return true;
  }

  dropDatabase(db: string): void {
    const database = this.databases.get(db);
    if (!database) return;
    for (const name of [...database.keys()]) this.dropCollection(db, name);
    this.databases.delete(db);
    this.record({ op: 'dropDatabase', db });
  }

  /**
   * A rename within a database is one oplog entry. With `dropTarget` an existing target is
   * dropped inside it without an entry of its own; the entry names the dropped collection's UUID
   * instead (OpObserverImpl::onRenameCollection), and streams on the target namespace see it.
   * A rename into another database is a copy (renameCollectionAcrossDatabases).
   */
  renameCollection(db: string, from: string, toDb: string, to: string, dropTarget: boolean): void {
    const source = this.collection(db, from);
    if (!source) throw new CommandError(26, `Source collection ${db}.${from} does not exist`);
    const target = this.collection(toDb, to);
    if (target && !dropTarget) {
      throw new CommandError(48, 'target namespace exists', 'NamespaceExists');
    }
    if (db !== toDb) {
      this.renameAcrossDatabases(source, db, toDb, to, dropTarget);
      return;
    }
    if (target) this.databases.get(toDb)!.delete(to);
    this.databases.get(db)!.delete(from);
    source.name = to;
    this.databases.get(toDb)!.set(to, source);
    const destination = { db: toDb, coll: to };
    this.record({
      op: 'rename',
      db,
      coll: from,
      uuid: source.uuid,
      to: destination,
      operationDescription: {
        to: destination,
        ...(target ? { dropTarget: target.uuid } : {}),
      },
    });
  }

  /**
   * As rename_collection.cpp's renameCollectionAcrossDatabases does it (every step logged): a
   * temporary collection `tmp<5 letters or digits>.renameCollection` in the target database,
   * with the source's options and a new UUID; the source's indexes built on it while empty (one
   * entry each); every document inserted into it (one entry each); that collection renamed onto
   * the target within its database (with `dropTarget` as asked); then the source dropped. Streams
   * on the source see a `drop`; streams on the target database see the copy's inserts and a
   * `rename` from the temporary collection (jstests/change_streams/ddl_rename_cross_db.js).
   */
  private renameAcrossDatabases(
    source: Collection,
    db: string,
    toDb: string,
    to: string,
    dropTarget: boolean,
  ): void {
    let temp: string;
    do temp = `tmp${randomAlphanumerics(5)}.renameCollection`;
    while (this.collection(toDb, temp));
    this.ensureCollection(toDb, temp, cloneDocument(source.options));
    if (source.indexes.size) this.createIndexes(toDb, temp, [...source.indexes.values()]);
    this.insert(toDb, temp, [...source.docs.values()], true);
    this.renameCollection(toDb, temp, toDb, to, dropTarget);
    this.dropCollection(db, source.name);
  }

  /**
   * `$out`: the results go into a temporary collection (with the target's options and indexes),
   * which is then renamed over the target with `dropTarget`, as DocumentSourceOut does. So `$out`
   * into an existing collection reads as a rename onto it.
   */
  replaceWith(db: string, name: string, docs: Document[]): void {
    const temp = `tmp.agg_out.${new UUID().toHexString(true)}`;
    const target = this.collection(db, name);
    this.ensureCollection(db, temp, target ? cloneDocument(target.options) : {});
    if (target?.indexes.size) this.createIndexes(db, temp, [...target.indexes.values()]);
    const { writeErrors } = this.insert(db, temp, docs, true);
    if (writeErrors.length) {
      this.dropCollection(db, temp);
      throw new CommandError(writeErrors[0]!.code, writeErrors[0]!.errmsg);
    }
    this.renameCollection(db, temp, db, name, true);
  }

  /**
   * `$merge` on `_id`: each result written into the target itself, as MergeProcessor does it
   * (document_source_merge.cpp, merge_processor.cpp): `merge` is an upsert of `{$set: doc}`,
   * `replace` an upserted replacement, `keepExisting` an upsert of `{$setOnInsert: doc}`, `fail`
   * an insert; without upsert for `whenNotMatched: discard|fail`. No temporary collection and no
   * rename: streams see ordinary inserts, updates and replaces of the target (an update that
   * changes nothing is not logged).
   */
  mergeInto(db: string, name: string, docs: Document[], spec: MergeSpec): void {
    const { whenMatched, whenNotMatched } = spec;
    this.ensureCollection(db, name);
    for (const doc of docs) {
      const id = '_id' in doc ? doc._id : new ObjectId();
      const result = withIdFirst(doc, id);
      const matched = this.collection(db, name)!.docs.has(idKey(id));
      if (!matched) {
        if (whenNotMatched === 'discard') continue;
        if (whenNotMatched === 'fail') {
          throw new CommandError(
            13113,
            '$merge could not find a matching document in the target collection for at least one document in the source collection',
            'MergeStageNoMatchingDocument',
          );
        }
        this.insert(db, name, [result], true);
        continue;
      }
      if (whenMatched === 'fail') {
        throw new CommandError(
          11000,
          `$merge with whenMatched: fail found an existing document with the same values for the 'on' field: ${duplicateKeyMessage(db, name, id)}`,
          'DuplicateKey',
        );
      }
      if (whenMatched === 'keepExisting') continue;
      // `_id` is the same value on both sides, a no-op in the server's {$set: doc}.
      const { _id: _same, ...fields } = result;
      const u = whenMatched === 'replace' ? result : { $set: fields };
      this.update(db, name, { q: { _id: id }, u });
    }
  }

  /** Index specs as listIndexes reports them, `_id_` first. */
  listIndexes(db: string, name: string): Document[] {
    const collection = this.collection(db, name);
    if (!collection) return [];
    return [{ ...ID_INDEX }, ...[...collection.indexes.values()].map((i) => cloneDocument(i))];
  }

  /**
   * New indexes: on an empty collection each is its own `createIndexes` entry; on a non-empty one
   * the build ends in one `commitIndexBuild` entry for all of them. Both read as `createIndexes`.
   */
  createIndexes(db: string, name: string, specs: Document[]): { before: number; after: number } {
    const collection = this.ensureCollection(db, name);
    const before = 1 + collection.indexes.size;
    const added: Document[] = [];
    for (const spec of specs) {
      const { key, name: indexName, ...options } = spec;
      if (collection.indexes.has(indexName)) continue;
      const index = { v: 2, key, name: indexName, ...options };
      collection.indexes.set(indexName, index);
      added.push(index);
    }
    const entry = { op: 'createIndexes' as const, db, coll: name, uuid: collection.uuid };
    if (collection.docs.size === 0) {
      for (const index of added) {
        this.record({ ...entry, operationDescription: { indexes: [cloneDocument(index)] } });
      }
    } else if (added.length) {
      this.record({ ...entry, operationDescription: { indexes: added.map(cloneDocument) } });
    }
    return { before, after: 1 + collection.indexes.size };
  }

  /** Drops one index by name or key pattern, or `'*'` for all but `_id_`: one entry each. */
  dropIndexes(db: string, name: string, index: unknown): number {
    const collection = this.collection(db, name);
    if (!collection) throw new CommandError(26, `ns not found ${db}.${name}`);
    const before = 1 + collection.indexes.size;
    const names =
      index === '*'
        ? [...collection.indexes.keys()]
        : [...collection.indexes.values()]
            .filter((i) => i.name === index || (isPlainObject(index) && sameValue(i.key, index)))
            .map((i) => i.name as string);
    if (names.length === 0) {
      throw new CommandError(27, `index not found with name [${String(index)}]`, 'IndexNotFound');
    }
    for (const indexName of names) {
      const spec = collection.indexes.get(indexName)!;
      collection.indexes.delete(indexName);
      this.record({
        op: 'dropIndexes',
        db,
        coll: name,
        uuid: collection.uuid,
        operationDescription: { indexes: [cloneDocument(spec)] },
      });
    }
    return before;
  }

  /** collMod: the changed options, and the options before as `stateBeforeChange`. */
  modifyCollection(db: string, name: string, changes: Document): void {
    const collection = this.collection(db, name);
    if (!collection) throw new CommandError(26, `ns does not exist: ${db}.${name}`);
    const before = { uuid: collection.uuid, ...cloneDocument(collection.options) };
    Object.assign(collection.options, cloneDocument(changes));
    this.record({
      op: 'modify',
      db,
      coll: name,
      uuid: collection.uuid,
      operationDescription: cloneDocument(changes),
      stateBeforeChange: { collectionOptions: before },
    });
  }

  insert(db: string, name: string, documents: Document[], ordered: boolean) {
    const collection = this.ensureCollection(db, name);
    const writeErrors: WriteError[] = [];
    let n = 0;
    for (const [index, input] of documents.entries()) {
      let doc: Document;
      let size: number;
      try {
        doc = '_id' in input ? cloneDocument(input) : withIdFirst(input, new ObjectId());
        size = storedSize(doc);
      } catch (error) {
        // Too large for js-bson to copy: too large to store in any case.
        if (!(error instanceof RangeError)) throw error;
        [doc, size] = [input, BSON.calculateObjectSize(input)];
      }
      // fixDocumentForInsert (src/mongo/db/ops/insert.cpp): BadValue, as a write error.
      if (size > MAX_USER_DOCUMENT_BYTES) {
        writeErrors.push({
          index,
          code: 2,
          errmsg: `object to insert too large. size in bytes: ${size}, max size: ${MAX_USER_DOCUMENT_BYTES}`,
        });
        if (ordered) break;
        continue;
      }
      const key = idKey(doc._id);
      if (collection.docs.has(key)) {
        writeErrors.push({ index, code: 11000, errmsg: duplicateKeyMessage(db, name, doc._id) });
        if (ordered) break;
        continue;
      }
      collection.docs.set(key, doc);
      this.record({
        op: 'insert',
        db,
        coll: name,
        uuid: collection.uuid,
        documentKey: { _id: doc._id },
        postImage: encoded(doc),
      });
      n++;
    }
    return { n, writeErrors };
  }

  find(db: string, name: string, filter: Document = {}): Document[] {
    const collection = this.collection(db, name);
    if (!collection) return [];
    // The _id index: equality and $in on _id are lookups, as on a real server.
    const id = filter._id;
    if (Object.keys(filter).length === 1 && id !== undefined) {
      if (!isPlainObject(id)) {
        const doc = collection.docs.get(idKey(id));
        return doc ? [doc] : [];
      }
      if (Object.keys(id).length === 1 && Array.isArray(id.$in)) {
        const found = new Map<string, Document>();
        for (const candidate of id.$in) {
          const key = idKey(candidate);
          const doc = collection.docs.get(key);
          if (doc) found.set(key, doc);
        }
        return [...found.values()];
      }
    }
    const docs = [...collection.docs.values()];
    if (Object.keys(filter).length === 0) return docs;
    return new Query(filter).find(docs).all() as Document[];
  }

  aggregate(db: string, name: string, pipeline: Document[]): Document[] {
    const docs = this.find(db, name).map((d) => cloneDocument(d));
    return new Aggregator(pipeline).run(docs) as Document[];
  }

  update(db: string, name: string, statement: UpdateStatement): UpdateResult {
    const matches = this.find(db, name, statement.q);
    const targets = statement.multi ? matches : matches.slice(0, 1);
    if (targets.length === 0) {
      if (!statement.upsert) return { n: 0, nModified: 0, before: null, after: null };
      return this.upsert(db, name, statement);
    }
    let nModified = 0;
    let before: Document | null = null;
    let after: Document | null = null;
    for (const current of targets) {
      const next = this.applyTo(current, statement, false);
      before ??= cloneDocument(current);
      after ??= next;
      if (this.replaceStored(db, name, current, next, statement.u)) nModified++;
    }
    return { n: targets.length, nModified, before, after };
  }

  private applyTo(current: Document, statement: UpdateStatement, inserting: boolean): Document {
    const u = statement.u;
    if (Array.isArray(u)) {
      const [result] = new Aggregator(u).run([cloneDocument(current)]) as Document[];
      return withIdFirst(result ?? {}, current._id);
    }
    if (!isOperatorUpdate(u)) {
      if ('_id' in u && !sameValue(u._id, current._id)) {
        throw new CommandError(
          66,
          "Performing an update on the path '_id' would modify the immutable field '_id'",
          'ImmutableField',
        );
      }
      return withIdFirst(cloneDocument(u), current._id);
    }
    const { $setOnInsert, ...operators } = u;
    const modifier =
      inserting && $setOnInsert
        ? { ...operators, $set: { ...(operators.$set ?? {}), ...$setOnInsert } }
        : operators;
    const next = cloneDocument(current);
    applyUpdate(next, modifier, statement.arrayFilters);
    if (!sameValue(next._id, current._id)) {
      throw new CommandError(
        66,
        "Performing an update on the path '_id' would modify the immutable field '_id'",
        'ImmutableField',
      );
    }
    return next;
  }

  private upsert(db: string, name: string, statement: UpdateStatement): UpdateResult {
    const seed = equalityFields(statement.q);
    const id = seed._id ?? new ObjectId();
    const doc = this.applyTo(withIdFirst(seed, id), statement, true);
    // src/mongo/db/exec/upsert_stage.cpp
    if (storedSize(doc) > MAX_USER_DOCUMENT_BYTES) {
      throw new CommandError(17420, `Document to upsert is larger than ${MAX_USER_DOCUMENT_BYTES}`);
    }
    this.insert(db, name, [doc], true);
    return { n: 1, nModified: 0, upserted: doc._id, before: null, after: doc };
  }

  /** Stores `next` in place of `current` and records the change; false when nothing changed. */
  private replaceStored(
    db: string,
    name: string,
    current: Document,
    next: Document,
    u: Document | Document[],
  ): boolean {
    // src/mongo/db/exec/update_stage.cpp
    if (storedSize(next) > MAX_USER_DOCUMENT_BYTES) {
      throw new CommandError(
        17419,
        `Resulting document after update is larger than ${MAX_USER_DOCUMENT_BYTES}`,
      );
    }
    if (sameValue(current, next)) return false;
    const collection = this.collection(db, name)!;
    collection.docs.set(idKey(current._id), next);
    const replacement = !Array.isArray(u) && !isOperatorUpdate(u);
    this.record({
      op: replacement ? 'replace' : 'update',
      db,
      coll: name,
      uuid: collection.uuid,
      documentKey: { _id: current._id },
      preImage: encoded(current),
      postImage: encoded(next),
      ...(replacement ? {} : describedUpdate(current, next)),
    });
    return true;
  }

  /**
   * A multi-document delete is logged in batches of up to 100 documents, each batch one
   * `applyOps` entry (batched deletes, default since 6.1: `batchUserMultiDeletes`,
   * `batchedDeletesTargetBatchDocs`), except on a collection that keeps pre- and post-images
   * (get_executor.cpp: `!collection->isChangeStreamPreAndPostImagesEnabled()`).
   */
  delete(
    db: string,
    name: string,
    filter: Document,
    limit: number,
  ): { n: number; deleted: Document[] } {
    const matches = this.find(db, name, filter);
    const targets = limit === 1 ? matches.slice(0, 1) : matches;
    const collection = this.collection(db, name);
    const entries = targets.map((doc): EntryInput => {
      collection!.docs.delete(idKey(doc._id));
      return {
        op: 'delete',
        db,
        coll: name,
        uuid: collection!.uuid,
        documentKey: { _id: doc._id },
        preImage: encoded(doc),
      };
    });
    if (limit === 1 || collection?.imagesEnabled) {
      for (const entry of entries) this.record(entry);
    } else {
      for (let i = 0; i < entries.length; i += DELETE_BATCH_DOCS) {
        this.recordGroup(entries.slice(i, i + DELETE_BATCH_DOCS));
      }
    }
    return { n: targets.length, deleted: targets };
  }
}

const DELETE_BATCH_DOCS = 100;

const ALPHANUMERICS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** The random part of a temporary collection name (Database::makeUniqueCollectionNamespace). */
function randomAlphanumerics(n: number): string {
  return Array.from(randomBytes(n), (b) => ALPHANUMERICS[b % ALPHANUMERICS.length]).join('');
}

function duplicateKeyMessage(db: string, coll: string, id: unknown): string {
  return `E11000 duplicate key error collection: ${db}.${coll} index: _id_ dup key: { _id: ${BSON.EJSON.stringify(id as Document, { relaxed: true })} }`;
}
