// Change streams over the harness oplog: resume tokens, event shapes, full-document modes,
// invalidation, user pipeline stages and lost history, as a MongoDB 7.0 primary reports them.
import { BSON, Timestamp, type Binary, type Document, type UUID } from 'bson';
import { Aggregator } from 'mingo';
import { CommandError } from './errors.js';
import { EncodedDocument, decodedFields, encodeDocument, encoded } from './encoded.js';
import { decodeResumeToken, encodeResumeToken } from './resume-token.js';
import { cloneDocument, idKey, type OplogEntry, type Store } from './store.js';

/**
 * What a resume token says, after the server's ResumeTokenData (src/mongo/db/pipeline/
 * resume_token.h): a high-water mark sorts before every event at its cluster time; an event
 * token names the event by cluster time and its index inside an applyOps entry, and a fragment
 * of a split event by its (0-based) fragment number.
 */
export interface ResumeTokenData {
  clusterTime: Timestamp;
  tokenType: 'highWaterMark' | 'event';
  txnOpIndex: number;
  fromInvalidate: boolean;
  fragmentNum?: number;
  /** The collection's UUID; absent for events without one (dropDatabase) and high-water marks. */
  uuid?: UUID;
  /** `{operationType, documentKey}`, or `{operationType}` for an event without a document. */
  eventIdentifier?: Document;
}

const NO_FRAGMENT = 0xffffffff;

// Tokens have the real shape (KeyString hex, see resume-token.ts); the harness orders them by
// the fields decoded back, never by their text.
export function encodeToken(data: ResumeTokenData): { _data: string; _typeBits?: Binary } {
  return encodeResumeToken(data);
}

export function decodeToken(token: unknown): ResumeTokenData {
  return decodeResumeToken(token);
}

export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.t - b.t || a.i - b.i;
}

function rank(d: ResumeTokenData): number {
  return d.tokenType === 'highWaterMark' ? -1 : d.txnOpIndex;
}

/** Token order: cluster time, then high-water marks first, then index, then fragments. */
export function compareTokens(a: ResumeTokenData, b: ResumeTokenData): number {
  return (
    compareTimestamps(a.clusterTime, b.clusterTime) ||
    rank(a) - rank(b) ||
    (a.fragmentNum ?? NO_FRAGMENT) - (b.fragmentNum ?? NO_FRAGMENT) ||
    Number(a.fromInvalidate) - Number(b.fromInvalidate)
  );
}

function highWaterMark(clusterTime: Timestamp): ResumeTokenData {
  return { clusterTime, tokenType: 'highWaterMark', txnOpIndex: 0, fromInvalidate: false };
}

function eventToken(entry: OplogEntry, fromInvalidate = false): ResumeTokenData {
  return {
    clusterTime: entry.ts,
    tokenType: 'event',
    txnOpIndex: entry.txnOpIndex ?? 0,
    fromInvalidate,
    ...(entry.uuid ? { uuid: entry.uuid } : {}),
    eventIdentifier: {
      operationType: entry.op,
      ...(entry.documentKey ? { documentKey: entry.documentKey } : {}),
    },
  };
}

/** The largest BSON object a server builds (BSONObjMaxInternalSize: 16 MiB + 16 KiB). */
export const MAX_INTERNAL_BSON_SIZE = 16 * 1024 * 1024 + 16 * 1024;
/** Events above this are split by $changeStreamSplitLargeEvent (kBSONObjMaxChangeEventSize). */
export const MAX_CHANGE_EVENT_SIZE = MAX_INTERNAL_BSON_SIZE - 8 * 1024;

const SPLIT_STAGE = '$changeStreamSplitLargeEvent';

/** Event types shown only with `showExpandedEvents` (change_stream_helpers kClassicOperationTypes). */
const EXPANDED_OPERATIONS = new Set(['create', 'createIndexes', 'dropIndexes', 'modify']);

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

/** kRegexAllCollections `(?!(\$|system\.))`; an entry without a collection (dropDatabase) passes. */
function isUserCollection(coll: string | undefined): boolean {
  return coll === undefined || !(coll.startsWith('$') || coll.startsWith('system.'));
}

/** A change event as BSON; its resume token is made again from its entry when asked for. */
class EncodedEvent extends EncodedDocument {
  constructor(
    event: EncodedDocument,
    private readonly entry: OplogEntry,
    inner?: EncodedDocument,
  ) {
    super(event, inner);
  }

  get _id(): Document {
    return encodeToken(eventToken(this.entry));
  }
}

/**
 * Numbers for the shapes of events (a stream's shape and whether the collection keeps images):
 * the store keeps encoded events in an array by these numbers (Store.encodedEvents).
 */
const shapeSlots = new Map<string, number>();

function shapeSlot(shape: string): number {
  let slot = shapeSlots.get(shape);
  if (slot === undefined) {
    slot = shapeSlots.size;
    shapeSlots.set(shape, slot);
  }
  return slot;
}
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
      const index = store.oplog.length - 1;
      const entry = store.oplog[index];
      if (!entry) return;
      for (const shape of registered.values()) {
        try {
          shape.encodedEvent(entry, index);
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
  /** Events after this position are returned; a high-water mark includes its cluster time. */
  private position: ResumeTokenData;
  /** The user's stages, without a final $changeStreamSplitLargeEvent. */
  private readonly stages: Document[];
  private readonly split: boolean;
  /** This shape's slots (shapeSlot()), for a collection without and with images. */
  private readonly slots: readonly [number, number];
  /** Where the last read stopped in the oplog: most often where the next one starts. */
  private scanned = 0;
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
      const data = decodeToken(token);
      if (data.fromInvalidate && stage.resumeAfter) {
        throw new CommandError(
          260,
          "Attempting to resume a change stream using 'resumeAfter' is not allowed from an invalidate notification.",
          'InvalidResumeToken',
        );
      }
      this.position = data;
    } else if (stage.startAtOperationTime instanceof Timestamp) {
      this.position = highWaterMark(stage.startAtOperationTime);
    } else {
      // The server starts just after the latest oplog entry.
      const now = store.clusterTime;
      this.position = highWaterMark(new Timestamp({ t: now.t, i: now.i + 1 }));
    }
    ({ stages: this.stages, split: this.split } = splitStage(spec.stages));
    this.slots = [shapeSlot(`${this.shape}/false`), shapeSlot(`${this.shape}/true`)];
    this.checkHistory();
    this.validateStages();
    if (this.stages.length === 0) encodeOnWrite(store, this);
  }

  /** What decides an event's fields besides its oplog entry. */
  get shape(): string {
    const { fullDocument, fullDocumentBeforeChange, showExpandedEvents } = this.spec;
    return `${fullDocument}/${fullDocumentBeforeChange}/${showExpandedEvents}`;
  }

  /**
   * The entry's event as BSON, encoded once per shape and kept; an update looked up at read
   * time (updateLookup) is kept around its document, and the document as it is now put in.
   */
  encodedEvent(entry: OplogEntry, index: number): Document | null {
    const lookup = entry.op === 'update' && this.spec.fullDocument === 'updateLookup';
    const current = lookup ? this.currentDocument(entry) : null;
    if (lookup && !current) {
      const event = this.toEvent(entry);
      return event && new EncodedEvent(encodeDocument(event, false), entry);
    }
    // Whether images are on is read when the event is, as toEvent does.
    const slot = this.slots[this.imagesEnabled(entry) ? 1 : 0];
    const events = (this.store.encodedEvents[slot] ??= []);
    let event = events[index];
    if (event === undefined) {
      const plain = this.toEvent(entry);
      // A looked-up event is kept around its document, put in anew when read.
      event = plain && new EncodedEvent(encodeDocument(plain, true, current ?? undefined), entry);
      // Filled up to the entry, so the array stays a dense one.
      while (events.length < index) events.push(undefined);
      events[index] = event;
    }
    return current && event ? new EncodedEvent(event, entry, current) : event;
  }

  /** The document an update changed, as it is now (updateLookup), or null once deleted. */
  private currentDocument(entry: OplogEntry): EncodedDocument | null {
    const current = this.store
      .collection(entry.db, entry.coll!)
      ?.docs.get(idKey(entry.documentKey!._id));
    return current ? encoded(current) : null;
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
      new Aggregator(this.stages).run([{ _id: { _data: '' }, operationType: 'insert' }]);
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
    const cmp = compareTimestamps(this.position.clusterTime, lost);
    if (cmp < 0 || (cmp === 0 && this.position.tokenType === 'highWaterMark')) {
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
      const token = eventToken(entry);
      const resumedFragment =
        this.position.fragmentNum !== undefined &&
        compareTokens({ ...token, fragmentNum: this.position.fragmentNum }, this.position) === 0
          ? this.position.fragmentNum
          : undefined;
      if (compareTokens(token, this.position) <= 0 && resumedFragment === undefined) continue;
      if (this.inScope(entry)) {
        const event = this.stages.length
          ? this.toEvent(entry)
          : this.encodedEvent(entry, index - 1);
        const out = event ? this.applyStages(event) : [];
        for (const result of out) {
          for (const piece of this.limitSize(result, token, resumedFragment)) {
            if (events.length >= max) {
              this.scanned = index;
              return events;
            }
            events.push(piece);
            // A whole event's token is the entry's; a fragment's names its number.
            this.position = piece.splitEvent ? decodeToken(piece._id) : token;
          }
        }
        if (this.invalidates(entry)) {
          const invalidate = eventToken(entry, true);
          events.push({
            _id: encodeToken(invalidate),
            operationType: 'invalidate',
            clusterTime: entry.ts,
            wallTime: new Date(entry.wallTime),
          });
          this.position = invalidate;
          this.done = true;
          continue;
        }
      }
      // An entry that yields no event moves the position to its time, not past it, as the
      // server's high-water mark does; the last event returned stays the position otherwise.
      this.advanceTo(highWaterMark(entry.ts));
    }
    this.scanned = index;
    if (index >= oplog.length && !this.done) {
      // Scanned to the end: nothing up to the current cluster time is left unseen.
      this.advanceTo(highWaterMark(this.store.clusterTime));
    }
    return events;
  }

  /** Moves the position forward (never back) past an entry seen or a time scanned. */
  private advanceTo(token: ResumeTokenData): void {
    if (compareTokens(token, this.position) > 0) this.position = token;
  }

  /**
   * An event over the BSON limit fails the command with BSONObjectTooLarge (10334), unless the
   * pipeline ends with $changeStreamSplitLargeEvent: then it is split into fragments as the
   * server's change_stream_split_event_helpers.cpp does. Resuming inside a split event skips the
   * fragments up to the token's.
   */
  private limitSize(event: Document, token: ResumeTokenData, resumedFragment?: number): Document[] {
    const size = event instanceof EncodedDocument ? event.length : BSON.calculateObjectSize(event);
    if (!this.split) {
      if (size > MAX_INTERNAL_BSON_SIZE) throw tooLarge(size, event);
      return [event];
    }
    if (size <= MAX_CHANGE_EVENT_SIZE) {
      if (resumedFragment !== undefined) {
        throw new CommandError(
          280,
          'Attempted to resume from a split event fragment, but the event in the resumed stream was not large enough to be split',
          'ChangeStreamFatalError',
          ['NonResumableChangeStreamError'],
        );
      }
      return [event];
    }
    const fragments = splitEvent(
      event instanceof EncodedDocument ? event.toBSON() : decodedFields(event),
      token,
    );
    if (resumedFragment === undefined) return fragments;
    const rest = fragments.slice(resumedFragment + 1);
    if (rest.length === 0 && resumedFragment + 1 < fragments.length) {
      throw new CommandError(
        280,
        'Attempted to resume from a split event, but the resumed stream produced a different split. Ensure that the pipeline used to resume is the same as the original',
        'ChangeStreamFatalError',
        ['NonResumableChangeStreamError'],
      );
    }
    return rest;
  }

  private firstIndex(oplog: OplogEntry[]): number {
    // The first entry at or after the position's cluster time: several entries can share one.
    const at = this.position.clusterTime;
    // After an event the position is its entry, one before where the last read stopped.
    let hint = Math.min(this.scanned, oplog.length);
    if (hint > 0 && compareTimestamps(oplog[hint - 1]!.ts, at) >= 0) hint--;
    if (
      (hint === 0 || compareTimestamps(oplog[hint - 1]!.ts, at) < 0) &&
      (hint === oplog.length || compareTimestamps(oplog[hint]!.ts, at) >= 0)
    ) {
      return hint;
    }
    let lo = 0;
    let hi = oplog.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareTimestamps(oplog[mid]!.ts, at) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The oplog filter of change_stream_filter_helpers.cpp: writes and commands on the watched
   * namespace, and a rename whose target (`o.to`) is the watched namespace. A database or cluster
   * stream matches collections by DocumentSourceChangeStream::kRegexAllCollections, which leaves
   * out `system.*` (views, system.js, ...), except as the source of a rename into a watched one.
   */
  private inScope(entry: OplogEntry): boolean {
    if (entry.op === 'noop') return false;
    if (EXPANDED_OPERATIONS.has(entry.op) && !this.spec.showExpandedEvents) return false;
    const { db, coll } = this.spec;
    const renamedInto = entry.op === 'rename' ? entry.to : undefined;
    if (this.spec.cluster) {
      return (
        (!INTERNAL_DATABASES.has(entry.db) && isUserCollection(entry.coll)) ||
        (!!renamedInto &&
          !INTERNAL_DATABASES.has(renamedInto.db) &&
          isUserCollection(renamedInto.coll))
      );
    }
    if (!coll) {
      return (
        (entry.db === db && isUserCollection(entry.coll)) ||
        (renamedInto?.db === db && isUserCollection(renamedInto.coll))
      );
    }
    if (entry.op === 'dropDatabase') return false;
    return (
      (entry.db === db && entry.coll === coll) ||
      (renamedInto?.db === db && renamedInto.coll === coll)
    );
  }

  /** change_stream_filter_helpers buildInvalidationFilter. */
  private invalidates(entry: OplogEntry): boolean {
    if (this.spec.cluster) return false;
    if (this.spec.coll) return entry.op === 'drop' || entry.op === 'rename';
    return entry.op === 'dropDatabase';
  }

  /** The event as change_stream_event_transform.cpp builds it, fields in its order. */
  private toEvent(entry: OplogEntry): Document | null {
    const expanded = this.spec.showExpandedEvents;
    const event: Document = {
      _id: encodeToken(eventToken(entry)),
      operationType: entry.op,
      clusterTime: entry.ts,
      ...(expanded && entry.uuid ? { collectionUUID: entry.uuid } : {}),
      wallTime: new Date(entry.wallTime),
    };
    const ns = entry.coll ? { db: entry.db, coll: entry.coll } : { db: entry.db };
    switch (entry.op) {
      case 'insert':
        return {
          ...event,
          fullDocument: entry.postImage!,
          ns,
          documentKey: entry.documentKey,
        };
      case 'replace':
        return {
          ...event,
          fullDocument: entry.postImage!,
          ns,
          documentKey: entry.documentKey,
          ...this.preImage(entry),
        };
      case 'update': {
        const description = entry.updateDescription!;
        const disambiguatedPaths = entry.disambiguatedPaths ?? {};
        return {
          ...event,
          ...this.postImage(entry),
          ns,
          documentKey: entry.documentKey,
          updateDescription: expanded
            ? { ...description.toBSON(), disambiguatedPaths }
            : description,
          ...this.preImage(entry),
        };
      }
      case 'delete':
        return { ...event, ns, documentKey: entry.documentKey, ...this.preImage(entry) };
      case 'drop':
      case 'dropDatabase':
        return { ...event, ns };
      case 'rename':
        // The top-level `to` predates `operationDescription` (5.3) and is kept beside it.
        return { ...event, to: entry.to, ns, ...this.description(entry) };
      case 'create':
      case 'createIndexes':
      case 'dropIndexes':
        return { ...event, ns, ...this.description(entry) };
      case 'noop':
        return null;
      case 'modify':
        return {
          ...event,
          ns,
          ...this.description(entry),
          stateBeforeChange: cloneDocument(entry.stateBeforeChange!),
        };
    }
  }

  private description(entry: OplogEntry): Document {
    return this.spec.showExpandedEvents && entry.operationDescription
      ? { operationDescription: cloneDocument(entry.operationDescription) }
      : {};
  }

  private imagesEnabled(entry: OplogEntry): boolean {
    return this.store.collection(entry.db, entry.coll ?? '')?.imagesEnabled === true;
  }

  private postImage(entry: OplogEntry): Document {
    switch (this.spec.fullDocument) {
      case 'updateLookup':
        return { fullDocument: this.currentDocument(entry) };
      case 'whenAvailable':
        return { fullDocument: this.imagesEnabled(entry) ? entry.postImage! : null };
      case 'required':
        if (!this.imagesEnabled(entry)) throw missingImage('post-image');
        return { fullDocument: entry.postImage! };
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
    return { fullDocumentBeforeChange: entry.preImage! };
  }

  private applyStages(event: Document): Document[] {
    if (this.stages.length === 0) return [event];
    const token = event._id._data as string;
    // Images are sent as their stored bytes; stages need them as documents.
    const out = new Aggregator(this.stages).run([decodedFields(event)]) as Document[];
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
/** Takes a final $changeStreamSplitLargeEvent off the user's stages; it may appear only there. */
function splitStage(stages: Document[]): { stages: Document[]; split: boolean } {
  const at = stages.findIndex((stage) => SPLIT_STAGE in stage);
  if (at === -1) return { stages, split: false };
  const spec = stages[at]![SPLIT_STAGE];
  if (typeof spec !== 'object' || spec === null || Object.keys(spec).length > 0) {
    throw new CommandError(7182800, '$changeStreamSplitLargeEvent spec should be an empty object');
  }
  if (at !== stages.length - 1) {
    throw new CommandError(
      7182802,
      '$changeStreamSplitLargeEvent must be the last stage in the pipeline',
    );
  }
  return { stages: stages.slice(0, -1), split: true };
}

function tooLarge(size: number, event: Document): CommandError {
  return new CommandError(
    10334,
    `BSONObj size: ${size} (0x${size.toString(16).toUpperCase()}) is invalid. Size must be between 0 and ${MAX_INTERNAL_BSON_SIZE}(16MB) First element: _id: ${BSON.EJSON.stringify(event._id)}`,
    'BSONObjectTooLarge',
  );
}

/** The size of one field as an element of a BSON document. */
function elementSize(key: string, value: unknown): number {
  return BSON.calculateObjectSize({ [key]: value }) - 5;
}

/**
 * change_stream_split_event::splitChangeEvent: the fields other than `_id`, smallest first (by
 * element size, then name), fill fragments greedily; each fragment carries its own token (the
 * event's, with the fragment's number) and `splitEvent: {fragment, of}`. Room is kept for the
 * postBatchResumeToken, and the fragment's own sort key counts against its size.
 */
function splitEvent(event: Document, token: ResumeTokenData): Document[] {
  const fields = Object.entries(event)
    .filter(([key]) => key !== '_id')
    .map(([key, value]) => ({ key, value, size: elementSize(key, value) }))
    .sort((a, b) => a.size - b.size || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const tokenSize = BSON.calculateObjectSize(encodeToken(token));
  const maxFragmentSize = MAX_CHANGE_EVENT_SIZE - tokenSize;
  const fragments: Document[] = [];
  let next = 0;
  while (next < fields.length) {
    const id = encodeToken({ ...token, fragmentNum: fragments.length });
    const fragment: Document = { _id: id, splitEvent: { fragment: fragments.length + 1, of: 0 } };
    let size = BSON.calculateObjectSize({ ...fragment, $sortKey: [id] });
    do {
      const field = fields[next]!;
      fragment[field.key] = field.value;
      size += field.size;
      next++;
    } while (next < fields.length && size + fields[next]!.size <= maxFragmentSize);
    if (size > maxFragmentSize) {
      throw new CommandError(
        7182500,
        `Splitting change event failed: fragment size ${size} is greater than maximum allowed fragment size ${maxFragmentSize}`,
      );
    }
    fragments.push(fragment);
  }
  for (const fragment of fragments) fragment.splitEvent.of = fragments.length;
  return fragments;
}
