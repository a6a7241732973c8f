// Change streams over the harness oplog: resume tokens, event shapes, full-document modes,
// invalidation, user pipeline stages and lost history, as a MongoDB 7.0 primary reports them.
import { Timestamp, type Document } from 'bson';
import { Aggregator } from 'mingo';
import { CommandError } from './errors.js';
import { EncodedDocument, decodedFields, encodeDocument, encoded } from './encoded.js';
import { idKey, type OplogEntry, type Store } from './store.js';

// A token is the event's cluster time as fixed-width hex (so tokens sort like times), and a flag
// for invalidate events, which `resumeAfter` must refuse and `startAfter` accepts.
export function encodeToken(ts: Timestamp, invalidate = false): { _data: string } {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  return { _data: `82${hex(ts.t)}${hex(ts.i)}${invalidate ? '01' : '00'}` };
}

export function decodeToken(token: unknown): { ts: Timestamp; invalidate: boolean } {
  const data = (token as { _data?: unknown } | null)?._data;
  if (typeof data !== 'string' || !/^82[0-9a-f]{18}$/.test(data)) {
    throw new CommandError(
      260,
      'KeyString format error: invalid resume token',
      'InvalidResumeToken',
    );
  }
  return {
    ts: new Timestamp({ t: parseInt(data.slice(2, 10), 16), i: parseInt(data.slice(10, 18), 16) }),
    invalidate: data.slice(18) === '01',
  };
}

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.t - b.t || a.i - b.i;
}

export interface ChangeStreamSpec {
  db: string;
  /** Absent for a database or cluster stream. */
  coll?: string;
  cluster: boolean;
  fullDocument: string;
  fullDocumentBeforeChange: string;
  showExpandedEvents: boolean;
  /** Stages after `$changeStream`, applied to each event. */
  stages: Document[];
}

const INTERNAL_DATABASES = new Set(['admin', 'config', 'local']);

/** A change event as BSON, with its resume token at hand. */
class EncodedEvent extends EncodedDocument {
  readonly _id: Document;

  constructor(event: Document) {
    super(encodeDocument(event).parts);
    this._id = event._id as Document;
  }
}

/** Each oplog entry's encoded events, by shape. */
const encodedEvents = new WeakMap<OplogEntry, Map<string, EncodedEvent | null>>();
/** One stream of each shape opened on a store: every write is encoded for these shapes. */
const shapesOf = new WeakMap<Store, Map<string, ChangeStreamCursor>>();

/**
 * Encodes each later write's event, when the write happens, for the shape of `stream` (as
 * MongoDB writes images with the write), so a backlog is read from stored bytes.
 */
function encodeOnWrite(store: Store, stream: ChangeStreamCursor): void {
  let shapes = shapesOf.get(store);
  if (!shapes) {
    const registered = new Map<string, ChangeStreamCursor>();
    store.on('oplog', () => {
      const entry = store.oplog.at(-1);
      if (!entry) return;
      for (const shape of registered.values()) {
        try {
          shape.encodedEvent(entry);
        } catch {
          // An event its readers will refuse (a required image missing): they say so when read.
        }
      }
    });
    shapesOf.set(store, registered);
    shapes = registered;
  }
  if (!shapes.has(stream.shape)) shapes.set(stream.shape, stream);
}

export class ChangeStreamCursor {
  /** Events after this time are returned (at it too while `inclusive`). */
  private position: Timestamp;
  private inclusive: boolean;
  done = false;
  killed = false;

  constructor(
    private readonly store: Store,
    readonly spec: ChangeStreamSpec,
    stage: Document,
  ) {
    if (stage.resumeAfter && stage.startAfter) {
      throw new CommandError(50865, 'Do not specify both startAfter and resumeAfter');
    }
    const token = stage.resumeAfter ?? stage.startAfter;
    if (token) {
      const { ts, invalidate } = decodeToken(token);
      if (invalidate && stage.resumeAfter) {
        throw new CommandError(
          260,
          "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.",
          'InvalidResumeToken',
        );
      }
      this.position = ts;
      this.inclusive = false;
    } else if (stage.startAtOperationTime instanceof Timestamp) {
      this.position = stage.startAtOperationTime;
      this.inclusive = true;
    } else {
      this.position = store.clusterTime;
      this.inclusive = false;
    }
    this.checkHistory();
    this.validateStages();
    if (spec.stages.length === 0) encodeOnWrite(store, this);
  }

  /** What decides an event's fields besides its oplog entry. */
  get shape(): string {
    const { fullDocument, fullDocumentBeforeChange, showExpandedEvents } = this.spec;
    return `${fullDocument}/${fullDocumentBeforeChange}/${showExpandedEvents}`;
  }

  /**
   * The entry's event as BSON, encoded once per shape and kept; an update looked up at read
   * time (updateLookup) is encoded each time, as its document may have changed since.
   */
  encodedEvent(entry: OplogEntry): Document | null {
    if (entry.op === 'update' && this.spec.fullDocument === 'updateLookup') {
      const event = this.toEvent(entry);
      return event && new EncodedEvent(event);
    }
    let byShape = encodedEvents.get(entry);
    if (!byShape) {
      byShape = new Map();
      encodedEvents.set(entry, byShape);
    }
    // Whether images are on is read when the event is, as toEvent does.
    const key = `${this.shape}/${this.imagesEnabled(entry)}`;
    let event = byShape.get(key);
    if (event === undefined) {
      const plain = this.toEvent(entry);
      event = plain && new EncodedEvent(plain);
      byShape.set(key, event);
    }
    return event;
  }

  /** A real server rejects an unknown or malformed stage when the stream is opened. */
  private validateStages(): void {
    if (this.spec.stages.length === 0) return;
    const names = this.spec.stages.map((stage) => Object.keys(stage)[0] ?? '');
    // The pipeline is parsed first (unknown stages), then checked for change streams.
    const unknown = names.find((name) => !AGGREGATION_STAGES.has(name));
    if (unknown !== undefined) {
      throw new CommandError(40324, `Unrecognized pipeline stage name: '${unknown}'`);
    }
    const refused = names.find((name) => !CHANGE_STREAM_STAGES.has(name));
    if (refused !== undefined) {
      throw new CommandError(
        20,
        `${refused} is not permitted in a $changeStream pipeline`,
        'IllegalOperation',
      );
    }
    try {
      new Aggregator(this.spec.stages).run([{ _id: { _data: '' }, operationType: 'insert' }]);
    } catch (error) {
      throw new CommandError(
        40324,
        `Unrecognized pipeline stage or expression: ${(error as Error).message}`,
      );
    }
  }

  get namespace(): string {
    return this.spec.coll ? `${this.spec.db}.${this.spec.coll}` : `${this.spec.db}.$cmd.aggregate`;
  }

  /** The token a client may resume from after this batch. */
  get postBatchResumeToken(): { _data: string } {
    return encodeToken(this.position);
  }

  private checkHistory(): void {
    const lost = this.store.discardedThrough;
    if (!lost) return;
    const cmp = compareTimestamps(this.position, lost);
    if (cmp < 0 || (cmp === 0 && this.inclusive)) {
      throw new CommandError(
        286,
        'Resume of change stream was not possible, as the resume point may no longer be in the oplog.',
        'ChangeStreamHistoryLost',
        ['NonResumableChangeStreamError'],
      );
    }
  }

  /** Up to `max` events available now (never waits). */
  read(max: number): Document[] {
    this.checkHistory();
    const oplog = this.store.oplog;
    const events: Document[] = [];
    let index = this.firstIndex(oplog);
    while (index < oplog.length && events.length < max && !this.done) {
      const entry = oplog[index]!;
      index++;
      this.position = entry.ts;
      this.inclusive = false;
      if (!this.inScope(entry)) continue;
      const event = this.spec.stages.length ? this.toEvent(entry) : this.encodedEvent(entry);
      if (event) events.push(...this.applyStages(event));
      if (this.invalidates(entry)) {
        events.push({
          _id: encodeToken(entry.ts, true),
          operationType: 'invalidate',
          clusterTime: entry.ts,
          wallTime: entry.wallTime,
        });
        this.done = true;
      }
    }
    if (index >= oplog.length && !this.done) {
      // Scanned to the end: nothing up to the current cluster time is left unseen.
      this.position = this.store.clusterTime;
      this.inclusive = false;
    }
    return events;
  }

  private firstIndex(oplog: OplogEntry[]): number {
    let lo = 0;
    let hi = oplog.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const cmp = compareTimestamps(oplog[mid]!.ts, this.position);
      if (cmp < 0 || (cmp === 0 && !this.inclusive)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private inScope(entry: OplogEntry): boolean {
    if (this.spec.cluster) return !INTERNAL_DATABASES.has(entry.db);
    if (entry.db !== this.spec.db) return false;
    if (!this.spec.coll) return true;
    return entry.coll === this.spec.coll && entry.op !== 'dropDatabase';
  }

  private invalidates(entry: OplogEntry): boolean {
    if (this.spec.cluster) return false;
    if (this.spec.coll) return entry.op === 'drop' || entry.op === 'rename';
    return entry.op === 'dropDatabase';
  }

  private toEvent(entry: OplogEntry): Document | null {
    const base = {
      _id: encodeToken(entry.ts),
      operationType: entry.op,
      clusterTime: entry.ts,
      wallTime: entry.wallTime,
    };
    const ns = entry.coll ? { db: entry.db, coll: entry.coll } : { db: entry.db };
    switch (entry.op) {
      case 'insert':
        return {
          ...base,
          fullDocument: encoded(entry.postImage!),
          ns,
          documentKey: entry.documentKey,
        };
      case 'replace':
        return {
          ...base,
          fullDocument: encoded(entry.postImage!),
          ns,
          documentKey: entry.documentKey,
          ...this.preImage(entry),
        };
      case 'update': {
        const updateDescription = this.spec.showExpandedEvents
          ? { ...entry.updateDescription, disambiguatedPaths: {} }
          : entry.updateDescription;
        return {
          ...base,
          ns,
          documentKey: entry.documentKey,
          updateDescription,
          ...this.postImage(entry),
          ...this.preImage(entry),
        };
      }
      case 'delete':
        return { ...base, ns, documentKey: entry.documentKey, ...this.preImage(entry) };
      case 'drop':
      case 'dropDatabase':
        return { ...base, ns };
      case 'rename':
        return { ...base, ns, to: entry.to };
      case 'create':
        return this.spec.showExpandedEvents ? { ...base, ns, operationDescription: {} } : null;
    }
  }

  private imagesEnabled(entry: OplogEntry): boolean {
    return this.store.collection(entry.db, entry.coll ?? '')?.imagesEnabled === true;
  }

  private postImage(entry: OplogEntry): Document {
    switch (this.spec.fullDocument) {
      case 'updateLookup': {
        const current = this.store
          .collection(entry.db, entry.coll!)
          ?.docs.get(idKey(entry.documentKey!._id));
        return { fullDocument: current ? encoded(current) : null };
      }
      case 'whenAvailable':
        return { fullDocument: this.imagesEnabled(entry) ? encoded(entry.postImage!) : null };
      case 'required':
        if (!this.imagesEnabled(entry)) throw missingImage('post-image');
        return { fullDocument: encoded(entry.postImage!) };
      default:
        return {};
    }
  }

  private preImage(entry: OplogEntry): Document {
    const mode = this.spec.fullDocumentBeforeChange;
    if (mode !== 'whenAvailable' && mode !== 'required') return {};
    if (!this.imagesEnabled(entry)) {
      if (mode === 'required') throw missingImage('pre-image');
      return { fullDocumentBeforeChange: null };
    }
    return { fullDocumentBeforeChange: encoded(entry.preImage!) };
  }

  private applyStages(event: Document): Document[] {
    if (this.spec.stages.length === 0) return [event];
    const token = event._id._data as string;
    // Images are sent as their stored bytes; stages need them as documents.
    const out = new Aggregator(this.spec.stages).run([decodedFields(event)]) as Document[];
    for (const result of out) {
      if (result._id?._data !== token) {
        throw new CommandError(
          280,
          'Encountered an event whose _id field, which contains the resume token, was modified by the pipeline.',
          'ChangeStreamFatalError',
          ['NonResumableChangeStreamError'],
        );
      }
    }
    return out;
  }
}

// document_source_change_stream_add_post_image.cpp / _add_pre_image.cpp (7.0).
function missingImage(which: 'post-image' | 'pre-image'): CommandError {
  const events = which === 'post-image' ? 'update events' : 'update, delete and replace events';
  return new CommandError(
    47,
    `Change stream was configured to require a ${which} for all ${events}, but the ${which} was not found for event`,
    'NoMatchingDocument',
  );
}

/** Stages allowed after $changeStream (isAllowedInChangeStream in the server's stage constraints). */
const CHANGE_STREAM_STAGES = new Set([
  '$match',
  '$project',
  '$addFields',
  '$set',
  '$unset',
  '$replaceRoot',
  '$replaceWith',
  '$redact',
  '$changeStreamSplitLargeEvent',
]);

/** Every stage name a 7.0 server parses (others fail with 40324). */
const AGGREGATION_STAGES = new Set([
  ...CHANGE_STREAM_STAGES,
  '$bucket',
  '$bucketAuto',
  '$changeStream',
  '$collStats',
  '$count',
  '$currentOp',
  '$densify',
  '$documents',
  '$facet',
  '$fill',
  '$geoNear',
  '$graphLookup',
  '$group',
  '$indexStats',
  '$limit',
  '$listLocalSessions',
  '$listSearchIndexes',
  '$listSessions',
  '$lookup',
  '$merge',
  '$out',
  '$planCacheStats',
  '$sample',
  '$search',
  '$searchMeta',
  '$setWindowFields',
  '$shardedDataDistribution',
  '$skip',
  '$sort',
  '$sortByCount',
  '$unionWith',
  '$unwind',
  '$vectorSearch',
]);
