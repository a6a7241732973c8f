// Reading a change stream in batches: up to `batchSize` events or the bytes the caller allows,
// waiting at most `batchWaitMs` after the first, a collection- or database-wide event always last in its
// batch. Reopens past `invalidate` with `startAfter`, as the design asks. Events over 16 MB arrive
// split into fragments ($changeStreamSplitLargeEvent, MongoDB 7.0 and 6.0.9+) and leave here whole.
import type { Timestamp, ChangeStream, Document, MongoClient } from 'mongodb';
import { BsonType, documentElements } from '../convert/bson.js';
import { ChangeEvent } from '../convert/change.js';
import { explainMongoError } from './errors.js';

export type FullDocumentMode = 'updateLookup' | 'whenAvailable' | 'required' | 'patch';

/** Where a change stream starts: the options it is opened with. */
export type StreamPosition = { startAfter: Document } | { startAtOperationTime: Timestamp };

export interface SourceOptions {
  database: string;
  /** null: every collection of the database. */
  collections: string[] | null;
  fullDocument: FullDocumentMode;
  /** Extra pipeline stages from --filter, applied after the relay's own. */
  filter: Document[];
  batchSize: number;
  /**
   * Most bytes of events (their BSON size, as read) held at once: the batch being written and
   * the one read ahead together (`readAheadBytes`). Large documents make small batches; a batch
   * always takes its first event, however large.
   */
  batchBytes: number;
  batchWaitMs: number;
}

export interface SourceBatch {
  events: ChangeEvent[];
  /** Their BSON size. */
  bytes: number;
  /** Where a stream reopened after this batch continues; null before the server named one. */
  position: StreamPosition | null;
}

/**
 * Whether a server of this `versionArray` (buildInfo) has $changeStreamSplitLargeEvent: 7.0 on,
 * and 6.0 from 6.0.9 (backported; the 6.1-6.3 rapid releases lack it).
 */
export function supportsSplitEvents(versionArray: readonly number[]): boolean {
  const [major = 0, minor = 0, patch = 0] = versionArray;
  return major >= 7 || (major === 6 && minor === 0 && patch >= 9);
}

/**
 * One change event from its $changeStreamSplitLargeEvent fragments, in order: the top-level
 * fields of each (the server splits at top-level fields), without `splitEvent`, and first the
 * `_id` of the last, the token after which the whole event is read. Put together from the
 * fragments' bytes.
 */
export function mergeFragments(fragments: readonly ChangeEvent[]): ChangeEvent {
  const parts: Uint8Array[] = [];
  const last = fragments.at(-1)!;
  for (const element of documentElements(last.bytes)) {
    if (element.name === '_id') parts.push(last.bytes.subarray(element.start, element.end));
  }
  for (const fragment of fragments) {
    for (const element of documentElements(fragment.bytes)) {
      if (element.name === '_id' || element.name === 'splitEvent') continue;
      parts.push(fragment.bytes.subarray(element.start, element.end));
    }
  }
  let size = 5;
  for (const part of parts) size += part.length;
  const bytes = Buffer.allocUnsafe(size);
  bytes.writeInt32LE(size, 0);
  let at = 4;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  bytes[at] = 0;
  return new ChangeEvent(bytes);
}

/** Collects the fragments of a split event; hands back the whole event with its last one. */
export class FragmentAssembler {
  private fragments: ChangeEvent[] = [];

  /** True while an event is only partly read: a batch must not close then. */
  get partial(): boolean {
    return this.fragments.length > 0;
  }

  /** The event itself when not a fragment, the merged event at its last fragment, else null. */
  add(event: ChangeEvent): ChangeEvent | null {
    const split = event.splitEvent;
    if (!split) {
      if (this.partial) throw this.broken(`an unsplit event`);
      return event;
    }
    const { fragment, of } = split;
    if (fragment !== this.fragments.length + 1) {
      throw this.broken(`fragment ${fragment} of ${of}`);
    }
    this.fragments.push(event);
    if (fragment < of) return null;
    const whole = mergeFragments(this.fragments);
    this.fragments = [];
    return whole;
  }

  private broken(got: string): Error {
    const had = this.fragments.length;
    this.fragments = [];
    return new Error(
      `a split change event arrived out of order: ${got} after ${had} fragment(s) of another; the stream reopens at the last whole event`,
    );
  }
}

/** The parts of node-mongodb-native (7.x) the relay reads a change stream's batches through. */
interface StreamInternals {
  _processChange?: (change: unknown) => unknown;
  cursor?: {
    /** The reply of the last aggregate or getMore: its batch, and how many of it were taken. */
    documents?: {
      iterated?: number;
      readonly batch?: { bson?: Uint8Array; elements?: number[][] };
    } | null;
  };
}

const DRIVER_NEEDED =
  'this version of the MongoDB driver (node-mongodb-native) lacks the ChangeStream internals the relay reads events through; the relay needs the 7.x line it was built with';

/**
 * A change stream whose events are ChangeEvents read from their bytes. With `raw: true` the
 * driver's ChangeStream gets each event as bytes and passes it to `_processChange`, which caches
 * `change._id` as the resume token: it gets the ChangeEvent instead, whose `_id` is the token.
 *
 * The events of a reply already received are taken from it directly (`buffered()`), not one
 * `tryNext()` each: that awaited two promises and built an object of offsets for every event,
 * more than the relay spent on the event itself. The resume token is then cached for the last
 * event taken, before the stream is read again or its token read (`settle()`), so it is what
 * the driver would hold after handing out the same events: the postBatchResumeToken once a
 * reply is used up, the event's `_id` before that (change-streams specification, "Resume
 * Process"). These are internals of node-mongodb-native 7.x; without them the relay stops at its
 * first read rather than misreading events.
 */
class RawChangeStream {
  private readonly processChange: (change: unknown) => unknown;
  /** The last event taken from a reply whose resume token is not cached yet. */
  private unsettled: ChangeEvent | null = null;

  constructor(private readonly stream: ChangeStream) {
    const internals = stream as unknown as StreamInternals;
    const process = internals._processChange;
    if (typeof process !== 'function') throw new Error(DRIVER_NEEDED);
    this.processChange = (change) => process.call(stream, change);
    internals._processChange = (change) =>
      this.processChange(change instanceof Uint8Array ? new ChangeEvent(change) : change);
  }

  /** The next event, from the reply at hand or (awaited) the next one; null when none came. */
  async tryNext(): Promise<ChangeEvent | null> {
    this.settle();
    return (await this.stream.tryNext()) as ChangeEvent | null;
  }

  /** The next event of the reply at hand, or null when it is used up. */
  buffered(): ChangeEvent | null {
    if (this.stream.bufferedCount() === 0) return null;
    const documents = (this.stream as unknown as StreamInternals).cursor?.documents;
    const iterated = documents?.iterated;
    const batch = documents?.batch;
    const element = typeof iterated === 'number' ? batch?.elements?.[iterated] : undefined;
    if (!batch?.bson || !element || element.length < 5) throw new Error(DRIVER_NEEDED);
    const [type, , , offset, length] = element as [number, number, number, number, number];
    documents!.iterated = iterated! + 1;
    if (type !== BsonType.Object) {
      throw new Error(`MongoDB sent a change event that is not a document (BSON type ${type})`);
    }
    const event = new ChangeEvent(batch.bson.subarray(offset, offset + length));
    // The driver's own error for an event without `_id`, which servers before 4.2 let a
    // --filter remove.
    if (!event.hasResumeToken) this.processChange(event);
    this.unsettled = event;
    return event;
  }

  /** Caches the resume token of the last event taken from the reply at hand. */
  settle(): void {
    if (this.unsettled === null) return;
    const event = this.unsettled;
    this.unsettled = null;
    this.processChange(event);
  }

  /** The token after the events handed out so far. */
  get resumeToken(): Document | null {
    this.settle();
    return this.stream.resumeToken as Document | null;
  }

  close(): Promise<void> {
    this.unsettled = null;
    return this.stream.close();
  }
}

export const CONTROL_OPERATIONS = new Set(['drop', 'rename', 'dropDatabase', 'invalidate']);

export class ChangeSource {
  private stream: RawChangeStream | null = null;
  private position: StreamPosition | null = null;
  /** Where the stream is to start, until its first read creates it. */
  private opened: StreamPosition | null = null;
  /** Whether the server splits large events; asked once, at the first read. */
  private splitEvents: boolean | null = null;

  constructor(
    private readonly client: MongoClient,
    readonly options: SourceOptions,
  ) {}

  get where(): string {
    const { database, collections } = this.options;
    return collections?.length === 1 ? `${database}.${collections[0]}` : database;
  }

  /** The relay's own stages: only the collections asked for, plus events that end a stream. */
  private pipeline(splitEvents: boolean): Document[] {
    const { collections, filter } = this.options;
    const stages: Document[] = [];
    if (collections && collections.length > 1) {
      stages.push({
        $match: {
          $or: [
            { 'ns.coll': { $in: collections } },
            // A rename onto a relayed collection replaces it (dropTarget, $out into it).
            { 'to.coll': { $in: collections } },
            { operationType: { $in: ['dropDatabase', 'invalidate'] } },
          ],
        },
      });
    }
    // The server requires the split stage last, after the user's --filter.
    const split = splitEvents ? [{ $changeStreamSplitLargeEvent: {} }] : [];
    return [...stages, ...filter, ...split];
  }

  /** Opens at `position`; the stream itself is created at the first read (ensureStream()). */
  open(position: StreamPosition): void {
    this.position = position;
    this.opened = position;
  }

  private async ensureStream(): Promise<RawChangeStream> {
    if (this.stream) return this.stream;
    const position = this.opened;
    if (!position) throw new Error('ChangeSource.next() before open()');
    if (this.splitEvents === null) {
      const info = await this.client.db('admin').command({ buildInfo: 1 });
      const versionArray = (info.versionArray as unknown[] | undefined)?.map(Number) ?? [];
      this.splitEvents = supportsSplitEvents(versionArray);
    }
    const { database, collections, fullDocument, batchSize, batchWaitMs } = this.options;
    const options = {
      ...position,
      ...(fullDocument === 'patch' ? {} : { fullDocument }),
      batchSize,
      maxAwaitTimeMS: batchWaitMs,
      // Events are read from their bytes (RawChangeStream), as MongoDB sent them: every number keeps
      // its BSON type (DESIGN §1), and nothing is decoded that the relay does not read.
      raw: true,
    };
    const db = this.client.db(database);
    const pipeline = this.pipeline(this.splitEvents);
    this.stream = new RawChangeStream(
      collections?.length === 1
        ? db.collection(collections[0]!).watch(pipeline, options)
        : db.watch(pipeline, options),
    );
    return this.stream;
  }

  /**
   * The next batch of events, closed once they reach `maxBytes` (the one that reaches it
   * included); an empty one after `batchWaitMs` without any.
   */
  async next(maxBytes = this.options.batchBytes): Promise<SourceBatch> {
    const events: ChangeEvent[] = [];
    // Local to one read: a batch never ends inside a split event, and a read that fails midway
    // leaves the position at the last whole event, where the reopened stream starts again.
    const assembler = new FragmentAssembler();
    const started = Date.now();
    // A batch closes when full, or batchWaitMs after its first event: under steady load a read
    // never comes back empty, so waiting for one would hold events until the batch is full.
    let firstAt = 0;
    let bytes = 0;
    let stream: RawChangeStream;
    try {
      stream = await this.ensureStream();
      const full = () => events.length >= this.options.batchSize || bytes >= maxBytes;
      while (!full() || assembler.partial) {
        const waited = Date.now() - (events.length > 0 ? firstAt : started);
        if (!assembler.partial && events.length > 0 && waited >= this.options.batchWaitMs) break;
        const read = stream.buffered() ?? (await stream.tryNext());
        const event = read && assembler.add(read);
        if (event) {
          if (events.length === 0) firstAt = Date.now();
          events.push(event);
          bytes += event.size;
          if (CONTROL_OPERATIONS.has(event.operationType)) break;
          continue;
        }
        if (read || assembler.partial) continue;
        if (events.length > 0 || waited >= this.options.batchWaitMs) break;
      }
    } catch (error) {
      throw explainMongoError(error, this.where);
    }
    const token = stream.resumeToken;
    if (token) this.position = { startAfter: token };
    if (events.at(-1)?.operationType === 'invalidate') {
      // The server closed the stream; `startAfter` the invalidate token continues past it.
      await this.close();
      this.open({ startAfter: events.at(-1)!._id! });
    }
    return { events, bytes, position: this.position };
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    this.opened = null;
    await stream?.close().catch(() => {});
  }
}

/**
 * Where a stream opened now starts: the postBatchResumeToken of a change-stream aggregate asked
 * for no events (batchSize 0). A stream started after it sees every write that commits later;
 * the operationTime of a command can be ahead of a write that reserved an earlier timestamp and
 * commits after it, which a stream started there would miss.
 */
export async function currentPosition(
  client: MongoClient,
  options: Pick<SourceOptions, 'database' | 'collections'>,
): Promise<StreamPosition> {
  const { database, collections } = options;
  const db = client.db(database);
  const collection = collections?.length === 1 ? collections[0]! : null;
  const reply = await db
    .command({
      aggregate: collection ?? 1,
      pipeline: [{ $changeStream: {} }],
      cursor: { batchSize: 0 },
    })
    .catch((error: unknown) => {
      throw explainMongoError(error, collection ? `${database}.${collection}` : database);
    });
  const cursor = reply.cursor as { id?: unknown; postBatchResumeToken?: Document } | undefined;
  if (cursor?.id && String(cursor.id) !== '0') {
    await db
      .command({ killCursors: collection ?? '$cmd.aggregate', cursors: [cursor.id] })
      .catch(() => undefined);
  }
  if (!cursor?.postBatchResumeToken) {
    throw new Error(`MongoDB did not report a resume token for ${database}; is it a replica set?`);
  }
  return { startAfter: cursor.postBatchResumeToken };
}
