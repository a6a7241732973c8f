// An in-process MongoDB replica-set primary that speaks the wire protocol to the official driver.
// It is a test harness: faithful where the relay depends on it (handshake, CRUD, change streams,
// resume, faults), nothing more. See test/support/README.md.
import net from 'node:net';
import { Binary, Long, ObjectId, type Document } from 'bson';
import { Aggregator } from 'mingo';
import { ChangeStreamCursor } from './changestream.js';
import { CommandError, RESUMABLE_CODES, RETRYABLE_WRITE_CODES } from './errors.js';
import { Store, cloneDocument, type UpdateStatement } from './store.js';
import { MessageReader, OP_QUERY, encodeMsg, encodeReply, type Request } from './wire.js';

export const MAX_WIRE_VERSION = 21; // MongoDB 7.0
const SERVER_VERSION = '7.0.14';
const DEFAULT_AWAIT_MS = 1000;
const FIRST_BATCH_SIZE = 101;

export interface HarnessOptions {
  host?: string;
  port?: number;
  /** false: answer as a standalone server (no change streams), as a misconfigured MongoDB does. */
  replicaSet?: boolean;
}

export interface InjectedFailure {
  code: number;
  errmsg?: string;
  /** Labels to send; by default the ones a real server adds for the code and command. */
  labels?: string[];
  /** Close the connection instead of replying. */
  closeConnection?: boolean;
  /** How many matching commands fail (default 1). */
  times?: number;
}

type Cursor =
  | { kind: 'documents'; ns: string; docs: Document[] }
  | { kind: 'changeStream'; ns: string; stream: ChangeStreamCursor; wake?: () => void };

const WRITE_COMMANDS = new Set(['insert', 'update', 'delete', 'findAndModify']);

export class MongoHarness {
  readonly store = new Store();
  private server!: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly cursors = new Map<string, Cursor>();
  private readonly failures = new Map<string, InjectedFailure & { remaining: number }>();
  private readonly retriedWrites = new Map<string, Document>();
  private nextCursorId = 1n;
  private nextConnectionId = 1;
  private pauseGate: Promise<void> | null = null;
  private releasePause: (() => void) | null = null;
  private readonly electionId = new ObjectId('7fffffff0000000000000001');
  private host = '127.0.0.1';
  private port = 0;
  private replicaSet = true;

  static async start(options: HarnessOptions = {}): Promise<MongoHarness> {
    const harness = new MongoHarness();
    await harness.listen(options);
    return harness;
  }

  private listen(options: HarnessOptions): Promise<void> {
    this.host = options.host ?? '127.0.0.1';
    this.replicaSet = options.replicaSet ?? true;
    this.server = net.createServer((socket) => this.accept(socket));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(options.port ?? 0, this.host, () => {
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Connection string for the replica set (or for the standalone server). */
  get url(): string {
    return this.replicaSet
      ? `mongodb://${this.address}/?replicaSet=rs0`
      : `mongodb://${this.address}/?directConnection=true`;
  }

  get directUrl(): string {
    return `mongodb://${this.address}/?directConnection=true`;
  }

  async stop(): Promise<void> {
    this.resume();
    for (const cursor of this.cursors.values()) if (cursor.kind === 'changeStream') cursor.wake?.();
    this.cursors.clear();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- fault injection -------------------------------------------------------------------

  /** Kills every open change-stream cursor; the client's next getMore gets CursorNotFound. */
  killChangeStreamCursors(): number {
    let killed = 0;
    for (const [id, cursor] of this.cursors) {
      if (cursor.kind !== 'changeStream') continue;
      cursor.stream.killed = true;
      this.cursors.delete(id);
      cursor.wake?.();
      killed++;
    }
    return killed;
  }

  /** Closes every client connection, as a network partition or server restart would. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** The next `times` commands named `command` fail with `code` (like the failCommand failpoint). */
  failCommand(command: string, failure: InjectedFailure): void {
    this.failures.set(command, { ...failure, remaining: failure.times ?? 1 });
  }

  /** Discards the oplog: resuming from any point before now fails with 286. */
  discardHistory(): void {
    this.store.discardHistory();
  }

  /** Stops answering (requests queue up) until resume(). */
  pause(): void {
    if (this.pauseGate) return;
    this.pauseGate = new Promise((resolve) => (this.releasePause = resolve));
  }

  resume(): void {
    this.releasePause?.();
    this.pauseGate = null;
    this.releasePause = null;
  }

  // ---- connections -----------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    const connectionId = this.nextConnectionId++;
    const reader = new MessageReader();
    let queue = Promise.resolve();
    socket.setNoDelay(true);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk) => {
      let requests: Request[];
      try {
        requests = reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const request of requests) {
        queue = queue.then(() => this.serve(socket, request, connectionId));
      }
    });
  }

  private async serve(socket: net.Socket, request: Request, connectionId: number): Promise<void> {
    if (this.pauseGate) await this.pauseGate;
    if (socket.destroyed) return;
    const reply = await this.execute(request, connectionId, socket);
    if (reply === null || request.moreToCome || socket.destroyed) return;
    reply.operationTime ??= this.store.clusterTime;
    socket.write(
      request.opCode === OP_QUERY
        ? encodeReply(request.requestId, reply)
        : encodeMsg(request.requestId, reply),
    );
  }

  private async execute(
    request: Request,
    connectionId: number,
    socket: net.Socket,
  ): Promise<Document | null> {
    const body = request.body;
    const name = Object.keys(body)[0] ?? '';
    try {
      const failure = this.failures.get(name);
      if (failure && failure.remaining > 0) {
        failure.remaining--;
        if (failure.remaining === 0) this.failures.delete(name);
        if (failure.closeConnection) {
          socket.destroy();
          return null;
        }
        throw new CommandError(
          failure.code,
          failure.errmsg ?? `injected failure of ${name}`,
          undefined,
          failure.labels ?? this.labelsFor(name, body, failure.code),
        );
      }
      return await this.retryOnce(body, () => this.dispatch(name, body, request, connectionId));
    } catch (error) {
      if (error instanceof CommandError) {
        return {
          ok: 0,
          errmsg: error.message,
          code: error.code,
          codeName: error.codeName,
          ...(error.labels.length ? { errorLabels: error.labels } : {}),
        };
      }
      return {
        ok: 0,
        errmsg: String((error as Error)?.message ?? error),
        code: 1,
        codeName: 'InternalError',
      };
    }
  }

  private labelsFor(name: string, body: Document, code: number): string[] {
    if (name === 'getMore' && RESUMABLE_CODES.has(code)) {
      const cursor = this.cursors.get(String(body.getMore));
      if (cursor?.kind === 'changeStream') return ['ResumableChangeStreamError'];
    }
    if (WRITE_COMMANDS.has(name) && RETRYABLE_WRITE_CODES.has(code)) return ['RetryableWriteError'];
    return [];
  }

  /** A retried write (same lsid and txnNumber) is applied once; the retry gets the first reply. */
  private async retryOnce(
    body: Document,
    run: () => Promise<Document> | Document,
  ): Promise<Document> {
    const lsid = body.lsid?.id;
    if (body.txnNumber === undefined || !(lsid instanceof Binary)) return run();
    const key = `${lsid.toString('hex')}:${String(body.txnNumber)}`;
    const previous = this.retriedWrites.get(key);
    if (previous) return previous;
    const reply = await run();
    if (reply.ok) this.retriedWrites.set(key, reply);
    return reply;
  }

  // ---- commands --------------------------------------------------------------------------

  private async dispatch(
    name: string,
    body: Document,
    request: Request,
    connectionId: number,
  ): Promise<Document> {
    const db = body.$db ?? 'admin';
    switch (name) {
      case 'hello':
      case 'isMaster':
      case 'ismaster':
        return this.hello(body, connectionId, name === 'hello');
      case 'ping':
      case 'endSessions':
      case 'killAllSessions':
        return { ok: 1 };
      case 'buildInfo':
      case 'buildinfo':
        return {
          version: SERVER_VERSION,
          versionArray: SERVER_VERSION.split('.').map(Number).concat(0),
          maxBsonObjectSize: 16 * 1024 * 1024,
          ok: 1,
        };
      case 'listDatabases':
        return this.listDatabases();
      case 'listCollections':
        return this.listCollections(db, body);
      case 'create':
        this.store.createCollection(db, body.create, body);
        return { ok: 1 };
      case 'collMod':
        this.requireCollection(db, body.collMod).options.changeStreamPreAndPostImages =
          body.changeStreamPreAndPostImages;
        return { ok: 1 };
      case 'drop':
        this.store.dropCollection(db, body.drop);
        return { ns: `${db}.${body.drop}`, nIndexesWas: 1, ok: 1 };
      case 'dropDatabase':
        this.store.dropDatabase(db);
        return { dropped: db, ok: 1 };
      case 'renameCollection': {
        const [fromDb, ...from] = String(body.renameCollection).split('.');
        const [toDb, ...to] = String(body.to).split('.');
        this.store.renameCollection(
          fromDb!,
          from.join('.'),
          toDb!,
          to.join('.'),
          !!body.dropTarget,
        );
        return { ok: 1 };
      }
      case 'createIndexes':
        this.store.ensureCollection(db, body.createIndexes);
        return { numIndexesBefore: 1, numIndexesAfter: 1 + (body.indexes?.length ?? 0), ok: 1 };
      case 'listIndexes':
        return this.cursorReply(
          `${db}.${body.listIndexes}`,
          [{ v: 2, key: { _id: 1 }, name: '_id_' }],
          body.cursor?.batchSize,
        );
      case 'insert':
        return this.insert(db, body, request);
      case 'update':
        return this.update(db, body, request);
      case 'delete':
        return this.delete(db, body, request);
      case 'find':
        return this.find(db, body);
      case 'count':
        return { n: this.store.find(db, body.count, body.query ?? {}).length, ok: 1 };
      case 'findAndModify':
      case 'findandmodify':
        return this.findAndModify(db, body);
      case 'aggregate':
        return this.aggregate(db, body);
      case 'getMore':
        return this.getMore(body);
      case 'killCursors':
        return this.killCursors(body);
      default:
        throw new CommandError(59, `no such command: '${name}'`, 'CommandNotFound');
    }
  }

  private hello(body: Document, connectionId: number, modern: boolean): Document {
    const lastWrite = this.store.clusterTime;
    const common = {
      ...(body.helloOk ? { helloOk: true } : {}),
      maxBsonObjectSize: 16 * 1024 * 1024,
      maxMessageSizeBytes: 48_000_000,
      maxWriteBatchSize: 100_000,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId,
      minWireVersion: 0,
      maxWireVersion: MAX_WIRE_VERSION,
      readOnly: false,
      ok: 1,
    };
    const role = modern ? { isWritablePrimary: true } : { ismaster: true };
    if (!this.replicaSet) return { ...role, ...common };
    return {
      ...role,
      hosts: [this.address],
      setName: 'rs0',
      setVersion: 1,
      secondary: false,
      primary: this.address,
      me: this.address,
      electionId: this.electionId,
      lastWrite: {
        opTime: { ts: lastWrite, t: Long.fromNumber(1) },
        lastWriteDate: new Date(lastWrite.t * 1000),
      },
      ...common,
    };
  }

  private listDatabases(): Document {
    const databases = [...this.store.databases.entries()].map(([name, colls]) => ({
      name,
      sizeOnDisk: 8192,
      empty: colls.size === 0,
    }));
    return { databases, totalSize: databases.length * 8192, ok: 1 };
  }

  private listCollections(db: string, body: Document): Document {
    const collections = [...(this.store.databases.get(db)?.values() ?? [])].map((c) =>
      body.nameOnly
        ? { name: c.name, type: 'collection' }
        : {
            name: c.name,
            type: 'collection',
            options: { ...c.options },
            info: { readOnly: false, uuid: c.uuid },
            idIndex: { v: 2, key: { _id: 1 }, name: '_id_' },
          },
    );
    const filtered = body.filter
      ? (new Aggregator([{ $match: body.filter }]).run(collections) as Document[])
      : collections;
    return this.cursorReply(`${db}.$cmd.listCollections`, filtered, body.cursor?.batchSize);
  }

  private requireCollection(db: string, name: string) {
    const collection = this.store.collection(db, name);
    if (!collection) throw new CommandError(26, `ns does not exist: ${db}.${name}`);
    return collection;
  }

  private insert(db: string, body: Document, request: Request): Document {
    const documents = body.documents ?? request.sequences.documents ?? [];
    const { n, writeErrors } = this.store.insert(
      db,
      body.insert,
      documents,
      body.ordered !== false,
    );
    return { n, ...(writeErrors.length ? { writeErrors } : {}), ok: 1 };
  }

  private update(db: string, body: Document, request: Request): Document {
    const updates: UpdateStatement[] = body.updates ?? request.sequences.updates ?? [];
    let n = 0;
    let nModified = 0;
    const upserted: Document[] = [];
    const writeErrors: Document[] = [];
    for (const [index, statement] of updates.entries()) {
      try {
        const result = this.store.update(db, body.update, statement);
        n += result.n;
        nModified += result.nModified;
        if (result.upserted !== undefined) upserted.push({ index, _id: result.upserted });
      } catch (error) {
        if (!(error instanceof CommandError)) throw error;
        writeErrors.push({ index, code: error.code, errmsg: error.message });
        if (body.ordered !== false) break;
      }
    }
    return {
      n,
      nModified,
      ...(upserted.length ? { upserted } : {}),
      ...(writeErrors.length ? { writeErrors } : {}),
      ok: 1,
    };
  }

  private delete(db: string, body: Document, request: Request): Document {
    const deletes: Document[] = body.deletes ?? request.sequences.deletes ?? [];
    let n = 0;
    for (const statement of deletes) {
      n += this.store.delete(db, body.delete, statement.q ?? {}, Number(statement.limit ?? 0)).n;
    }
    return { n, ok: 1 };
  }

  private find(db: string, body: Document): Document {
    const stages: Document[] = [];
    if (body.sort && Object.keys(body.sort).length) stages.push({ $sort: body.sort });
    if (body.skip) stages.push({ $skip: Number(body.skip) });
    const limit = Math.abs(Number(body.limit ?? 0));
    if (limit) stages.push({ $limit: limit });
    if (body.projection && Object.keys(body.projection).length) {
      stages.push({ $project: body.projection });
    }
    const matched = this.store.find(db, body.find, body.filter ?? {});
    // Stored documents are replaced on write, never changed in place, so a cursor may hold them
    // and copy each batch as it goes out, as a real cursor streams instead of copying everything.
    const docs = stages.length ? (new Aggregator(stages).run(matched) as Document[]) : matched;
    const single = body.singleBatch === true || Number(body.limit ?? 0) < 0;
    return this.cursorReply(`${db}.${body.find}`, docs, body.batchSize, single);
  }

  private findAndModify(db: string, body: Document): Document {
    const coll = body.findAndModify ?? body.findandmodify;
    const matches = this.store.find(db, coll, body.query ?? {});
    const sorted = body.sort
      ? (new Aggregator([{ $sort: body.sort }]).run(matches) as Document[])
      : matches;
    const target = sorted[0];
    const project = (doc: Document | null | undefined) =>
      doc && body.fields
        ? ((
            new Aggregator([{ $project: body.fields }]).run([cloneDocument(doc)]) as Document[]
          )[0] ?? null)
        : doc
          ? cloneDocument(doc)
          : null;
    if (body.remove) {
      if (!target) return { lastErrorObject: { n: 0 }, value: null, ok: 1 };
      this.store.delete(db, coll, { _id: target._id }, 1);
      return { lastErrorObject: { n: 1 }, value: project(target), ok: 1 };
    }
    const statement: UpdateStatement = {
      q: target ? { _id: target._id } : (body.query ?? {}),
      u: body.update,
      upsert: !!body.upsert,
      arrayFilters: body.arrayFilters,
    };
    const result = this.store.update(db, coll, statement);
    const lastErrorObject: Document = { n: result.n, updatedExisting: !!target };
    if (result.upserted !== undefined) lastErrorObject.upserted = result.upserted;
    return { lastErrorObject, value: project(body.new ? result.after : result.before), ok: 1 };
  }

  private aggregate(db: string, body: Document): Document {
    const pipeline: Document[] = body.pipeline ?? [];
    const first = pipeline[0];
    if (first?.$changeStream)
      return this.openChangeStream(db, body, first.$changeStream, pipeline.slice(1));
    if (pipeline.some((stage) => '$changeStream' in stage)) {
      throw new CommandError(
        40602,
        '$changeStream is only valid as the first stage in a pipeline.',
      );
    }
    if (body.aggregate === 1)
      throw new CommandError(73, 'database-level aggregation is not supported');
    const docs = this.store.aggregate(db, body.aggregate, pipeline);
    return this.cursorReply(`${db}.${body.aggregate}`, docs, body.cursor?.batchSize);
  }

  private openChangeStream(
    db: string,
    body: Document,
    stage: Document,
    stages: Document[],
  ): Document {
    if (!this.replicaSet) {
      throw new CommandError(40573, 'The $changeStream stage is only supported on replica sets');
    }
    const cluster = stage.allChangesForCluster === true;
    if (cluster && db !== 'admin') {
      throw new CommandError(73, '$changeStream may not be opened on the internal admin database');
    }
    const stream = new ChangeStreamCursor(
      this.store,
      {
        db,
        coll: body.aggregate === 1 ? undefined : String(body.aggregate),
        cluster,
        fullDocument: stage.fullDocument ?? 'default',
        fullDocumentBeforeChange: stage.fullDocumentBeforeChange ?? 'off',
        showExpandedEvents: stage.showExpandedEvents === true,
        stages,
      },
      stage,
    );
    const batchSize = body.cursor?.batchSize ?? FIRST_BATCH_SIZE;
    const events = stream.read(batchSize);
    const id = stream.done
      ? 0n
      : this.registerCursor({ kind: 'changeStream', ns: stream.namespace, stream });
    return {
      cursor: {
        firstBatch: events,
        postBatchResumeToken: stream.postBatchResumeToken,
        id: Long.fromBigInt(id),
        ns: stream.namespace,
      },
      ok: 1,
    };
  }

  private async getMore(body: Document): Promise<Document> {
    const key = String(body.getMore);
    const cursor = this.cursors.get(key);
    if (!cursor) throw new CommandError(43, `cursor id ${key} not found`, 'CursorNotFound');
    const batchSize = Number(body.batchSize ?? 0) || Number.MAX_SAFE_INTEGER;
    if (cursor.kind === 'documents') {
      const batch = cursor.docs.splice(0, batchSize).map((d) => cloneDocument(d));
      if (cursor.docs.length === 0) this.cursors.delete(key);
      return {
        cursor: {
          nextBatch: batch,
          id: Long.fromBigInt(cursor.docs.length ? BigInt(key) : 0n),
          ns: cursor.ns,
        },
        ok: 1,
      };
    }
    const stream = cursor.stream;
    let events = stream.read(batchSize);
    if (events.length === 0 && !stream.done) {
      await this.awaitOplog(cursor, Number(body.maxTimeMS ?? DEFAULT_AWAIT_MS));
      if (stream.killed) throw new CommandError(43, `cursor id ${key} not found`, 'CursorNotFound');
      events = stream.read(batchSize);
    }
    if (stream.done) this.cursors.delete(key);
    return {
      cursor: {
        nextBatch: events,
        postBatchResumeToken: stream.postBatchResumeToken,
        id: Long.fromBigInt(stream.done ? 0n : BigInt(key)),
        ns: cursor.ns,
      },
      ok: 1,
    };
  }

  /** Waits for the next oplog entry, the await time, or the cursor being killed. */
  private awaitOplog(cursor: Cursor & { kind: 'changeStream' }, maxMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.store.off('oplog', done);
        cursor.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, maxMs);
      this.store.on('oplog', done);
      cursor.wake = done;
    });
  }

  private killCursors(body: Document): Document {
    const cursorsKilled: Long[] = [];
    const cursorsNotFound: Long[] = [];
    for (const id of body.cursors ?? []) {
      const key = String(id);
      const cursor = this.cursors.get(key);
      if (cursor) {
        this.cursors.delete(key);
        if (cursor.kind === 'changeStream') {
          cursor.stream.killed = true;
          cursor.wake?.();
        }
        cursorsKilled.push(Long.fromString(key));
      } else {
        cursorsNotFound.push(Long.fromString(key));
      }
    }
    return { cursorsKilled, cursorsNotFound, cursorsAlive: [], cursorsUnknown: [], ok: 1 };
  }

  private registerCursor(cursor: Cursor): bigint {
    const id = this.nextCursorId++;
    this.cursors.set(String(id), cursor);
    return id;
  }

  private cursorReply(ns: string, docs: Document[], batchSize?: number, single = false): Document {
    const size = batchSize === undefined ? FIRST_BATCH_SIZE : Number(batchSize);
    const firstBatch = docs.slice(0, size).map((d) => cloneDocument(d));
    const rest = docs.slice(size);
    const id =
      !single && rest.length ? this.registerCursor({ kind: 'documents', ns, docs: rest }) : 0n;
    return { cursor: { firstBatch, id: Long.fromBigInt(id), ns }, ok: 1 };
  }
}
