// In-memory databases, collections and the oplog of the harness primary. Query matching and
// update operators come from mingo; this file adds what a replica set adds on top: `_id`
// uniqueness, an ordered oplog with cluster times, and change descriptions of each write.
import { EventEmitter } from 'node:events';
import { BSON, Long, ObjectId, Timestamp, UUID, type Document } from 'bson';
import { Aggregator, Query, update as applyUpdate } from 'mingo';
import { encoded } from './encoded.js';
import { CommandError } from './errors.js';

export type OplogOp =
  'insert' | 'update' | 'replace' | 'delete' | 'drop' | 'rename' | 'dropDatabase' | 'create';

export interface UpdateDescription {
  updatedFields: Document;
  removedFields: string[];
  truncatedArrays: { field: string; newSize: number }[];
}

export interface OplogEntry {
  ts: Timestamp;
  wallTime: Date;
  op: OplogOp;
  db: string;
  coll?: string;
  documentKey?: Document;
  /** insert/replace: the new document; update: the post-image. */
  postImage?: Document;
  preImage?: Document;
  updateDescription?: UpdateDescription;
  to?: { db: string; coll: string };
}

export interface CollectionOptions {
  changeStreamPreAndPostImages?: { enabled: boolean };
  [key: string]: unknown;
}

export class Collection {
  readonly uuid = new UUID();
  /** Documents by `_id` key, in insertion (natural) order. */
  readonly docs = new Map<string, Document>();
  constructor(
    readonly name: string,
    public options: CollectionOptions = {},
  ) {}

  get imagesEnabled(): boolean {
    return this.options.changeStreamPreAndPostImages?.enabled === true;
  }
}

const DESERIALIZE = { promoteLongs: false } as const;

/** A deep copy that keeps every BSON type (structuredClone would drop the classes). */
export function cloneDocument<T extends Document>(doc: T): T {
  return BSON.deserialize(BSON.serialize(doc), DESERIALIZE) as T;
}

/** MongoDB compares numbers across types: 1, 1.0 and Long(1) are the same `_id`. */
export function idKey(id: unknown): string {
  if (id instanceof ObjectId) return `o:${id.toHexString()}`;
  if (typeof id === 'string') return `s:${id}`;
  if (typeof id === 'number') return `n:${id}`;
  if (id instanceof Long) return `n:${id.toString()}`;
  if (typeof id === 'bigint') return `n:${id.toString()}`;
  return `x:${Buffer.from(BSON.serialize({ v: id })).toString('hex')}`;
}

function sameValue(a: unknown, b: unknown): boolean {
  return Buffer.from(BSON.serialize({ v: a })).equals(BSON.serialize({ v: b }));
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
  };
  diffObject(pre, post, '', description);
  return description;
}

function diffObject(pre: Document, post: Document, prefix: string, out: UpdateDescription): void {
  for (const key of Object.keys(pre)) {
    if (!(key in post)) out.removedFields.push(prefix + key);
  }
  for (const [key, value] of Object.entries(post)) {
    const path = prefix + key;
    if (!(key in pre)) {
      out.updatedFields[path] = value;
      continue;
    }
    diffValue(pre[key], value, path, out);
  }
}

function diffValue(before: unknown, after: unknown, path: string, out: UpdateDescription): void {
  if (isPlainObject(before) && isPlainObject(after)) {
    diffObject(before, after, `${path}.`, out);
  } else if (Array.isArray(before) && Array.isArray(after)) {
    diffArray(before, after, path, out);
  } else if (!sameValue(before, after)) {
    out.updatedFields[path] = after;
  }
}

function diffArray(
  before: unknown[],
  after: unknown[],
  path: string,
  out: UpdateDescription,
): void {
  const common = Math.min(before.length, after.length);
  const changedInPlace: number[] = [];
  for (let i = 0; i < common; i++) {
    if (!sameValue(before[i], after[i])) changedInPlace.push(i);
  }
  // Many changed elements are reported as the whole array, as the server does for rewrites.
  if (changedInPlace.length > common / 2 && changedInPlace.length > 1) {
    out.updatedFields[path] = after;
    return;
  }
  for (const i of changedInPlace) diffValue(before[i], after[i], `${path}.${i}`, out);
  if (after.length < before.length) {
    out.truncatedArrays.push({ field: path, newSize: after.length });
  }
  for (let i = before.length; i < after.length; i++) out.updatedFields[`${path}.${i}`] = after[i];
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

  private record(entry: Omit<OplogEntry, 'ts' | 'wallTime'>): void {
    // The image every change event of this write carries is encoded once, now.
    if (entry.postImage) encoded(entry.postImage);
    this.oplog.push({ ...entry, ts: this.tick(), wallTime: new Date() });
    this.emit('oplog');
  }

  /** Forget the oplog up to now: resuming from a point before its last entry fails with 286. */
  discardHistory(): void {
    const last = this.oplog.at(-1);
    if (last) this.discardedThrough = last.ts;
    this.oplog.length = 0;
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
      this.record({ op: 'create', db, coll: name });
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
    if (!database?.has(name)) return false;
    database.delete(name);
    this.record({ op: 'drop', db, coll: name });
    return true;
  }

  dropDatabase(db: string): void {
    const database = this.databases.get(db);
    if (!database) return;
    for (const name of [...database.keys()]) this.dropCollection(db, name);
    this.databases.delete(db);
    this.record({ op: 'dropDatabase', db });
  }

  renameCollection(db: string, from: string, toDb: string, to: string, dropTarget: boolean): void {
    const source = this.collection(db, from);
    if (!source) throw new CommandError(26, `Source collection ${db}.${from} does not exist`);
    if (this.collection(toDb, to)) {
      if (!dropTarget) throw new CommandError(48, 'target namespace exists', 'NamespaceExists');
      this.dropCollection(toDb, to);
    }
    this.databases.get(db)!.delete(from);
    const renamed = new Collection(to, source.options);
    for (const [key, doc] of source.docs) renamed.docs.set(key, doc);
    if (!this.databases.has(toDb)) this.databases.set(toDb, new Map());
    this.databases.get(toDb)!.set(to, renamed);
    this.record({ op: 'rename', db, coll: from, to: { db: toDb, coll: to } });
  }

  insert(db: string, name: string, documents: Document[], ordered: boolean) {
    const collection = this.ensureCollection(db, name);
    const writeErrors: WriteError[] = [];
    let n = 0;
    for (const [index, input] of documents.entries()) {
      const doc = '_id' in input ? cloneDocument(input) : withIdFirst(input, new ObjectId());
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
        documentKey: { _id: doc._id },
        postImage: cloneDocument(doc),
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
    if (sameValue(current, next)) return false;
    const collection = this.collection(db, name)!;
    collection.docs.set(idKey(current._id), next);
    const replacement = !Array.isArray(u) && !isOperatorUpdate(u);
    this.record({
      op: replacement ? 'replace' : 'update',
      db,
      coll: name,
      documentKey: { _id: current._id },
      preImage: cloneDocument(current),
      postImage: cloneDocument(next),
      ...(replacement ? {} : { updateDescription: describeUpdate(current, next) }),
    });
    return true;
  }

  delete(
    db: string,
    name: string,
    filter: Document,
    limit: number,
  ): { n: number; deleted: Document[] } {
    const matches = this.find(db, name, filter);
    const targets = limit === 1 ? matches.slice(0, 1) : matches;
    const collection = this.collection(db, name);
    for (const doc of targets) {
      collection!.docs.delete(idKey(doc._id));
      this.record({
        op: 'delete',
        db,
        coll: name,
        documentKey: { _id: doc._id },
        preImage: cloneDocument(doc),
      });
    }
    return { n: targets.length, deleted: targets };
  }
}

function duplicateKeyMessage(db: string, coll: string, id: unknown): string {
  return `E11000 duplicate key error collection: ${db}.${coll} index: _id_ dup key: { _id: ${BSON.EJSON.stringify(id as Document, { relaxed: true })} }`;
}
