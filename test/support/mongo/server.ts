// An in-process MongoDB replica-set primary that speaks the wire protocol to the official driver.
// It is a test harness: faithful where the relay depends on it (handshake, CRUD, change streams,
// resume, faults), nothing more. See test/support/README.md.
import net from 'node:net';
import { BSON, Binary, Long, ObjectId, type Document } from 'bson';
import { Aggregator } from 'mingo';
import { ChangeStreamCursor } from './changestream.js';
import { EncodedDocument, encoded } from './encoded.js';
import { CommandError, NOT_PRIMARY_ERRORS, serverErrorLabels } from './errors.js';
import { FailPoints, type CommandContext } from './failpoints.js';
import { Store, cloneDocument, type MergeSpec, type UpdateStatement } from './store.js';
import { MessageReader, OP_QUERY, encodeMsg, encodeReply, type Request } from './wire.js';

const SERVER_VERSION = '7.0.14';
/**
 * hello's maxWireVersion by release (mongodb/specifications source/wireversion-featurelist; 6.3,
 * which it does not list, by its rule that from 5.1 on every release adds one).
 */
const WIRE_VERSIONS: Record<string, number> = {
  '4.4': 9,
  '5.0': 13,
  '5.1': 14,
  '5.2': 15,
  '5.3': 16,
  '6.0': 17,
  '6.1': 18,
  '6.2': 19,
  '6.3': 20,
  '7.0': 21,
  '7.1': 22,
  '7.2': 23,
  '7.3': 24,
  '8.0': 25,
};
const DEFAULT_AWAIT_MS = 1000;
const DEFAULT_NOOP_INTERVAL_MS = 10_000;
const FIRST_BATCH_SIZE = 101;
/** FindCommon::kMaxBytesToReturnToClientAtOnce (= BSONObjMaxUserSize), src/mongo/db/query/find_common.h. */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** BSONObjMaxInternalSize (src/mongo/bson/util/builder.h): larger documents cannot be returned. */
const MAX_DOCUMENT_BYTES = MAX_BATCH_BYTES + 16 * 1024;

export interface HarnessOptions {
  host?: string;
  port?: number;
  /** false: answer as a standalone server (no change streams), as a misconfigured MongoDB does. */
  replicaSet?: boolean;
  /**
   * How often the primary logs a no-op when nothing else was written, which moves idle streams'
   * postBatchResumeToken (mongod's periodicNoopIntervalSecs, default 10 s); 0 turns it off.
   */
  noopIntervalMs?: number;
  /**
   * The version buildInfo reports (default 7.0.14), with hello's maxWireVersion to match. Before
   * 6.0.9 and on 6.1-6.3 a server has no $changeStreamSplitLargeEvent: the stage then fails as
   * unrecognized (40324), and an event over 16 MB fails with 10334. Nothing else changes: the
   * harness still behaves as 7.0 does.
   */
  version?: string;
}

/** An in-process shorthand for a `configureFailPoint` command (see failCommand()). */
export interface InjectedFailure {
  /** The error code to answer with (`data.errorCode`). */
  code?: number;
  /** Exactly these labels (`data.errorLabels`); by default the ones the server computes. */
  labels?: string[];
  /** Close the connection instead of replying. */
  closeConnection?: boolean;
  /** Hold the command this long before failing or running it (`blockConnection`). */
  blockTimeMS?: number;
  /** Only for connections of this application (`appName=` in the client's URL). */
  appName?: string;
  /** How many matching commands fail (default 1); `'alwaysOn'` until failCommand off. */
  times?: number | 'alwaysOn';
}

interface Connection {
  id: number;
  socket: net.Socket;
  /** `client.application.name` of the handshake: what failCommand's `appName` matches. */
  appName?: string;
}

type Cursor = { kind: 'documents'; ns: string; docs: Document[] } | ChangeStreamEntry;

/** `stash`: events read but not sent yet, because the batch was full (PlanExecutor::stashResult). */
type ChangeStreamEntry = {
  kind: 'changeStream';
  ns: string;
  stream: ChangeStreamCursor;
  stash: Document[];
  wake?: () => void;
};

/** Fields of every command that are not collection options (the command name aside). */
const ENVELOPE_FIELDS = new Set([
  '$db',
  'lsid',
  'txnNumber',
  '$clusterTime',
  '$readPreference',
  'writeConcern',
  'readConcern',
  'maxTimeMS',
  'comment',
  'apiVersion',
  'apiStrict',
  'apiDeprecationErrors',
]);

/** A create or collMod command's options: the command without its name and envelope. */
function commandOptions(body: Document): Document {
  const [, ...fields] = Object.entries(body);
  return Object.fromEntries(fields.filter(([key]) => !ENVELOPE_FIELDS.has(key)));
}

export class MongoHarness {
  readonly store = new Store();
  private server!: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly cursors = new Map<string, Cursor>();
  readonly failPoints = new FailPoints();
  private readonly retriedWrites = new Map<string, Document>();
  private nextCursorId = 1n;
  private nextConnectionId = 1;
  private stopped = false;
  private pauseGate: Promise<void> | null = null;
  private releasePause: (() => void) | null = null;
  private readonly electionId = new ObjectId('7fffffff0000000000000001');
  /** topologyVersion.processId: new each time the server starts, as a mongod process's is. */
  private processId = new ObjectId();
  private host = '127.0.0.1';
  private port = 0;
  private replicaSet = true;
  private noopIntervalMs = DEFAULT_NOOP_INTERVAL_MS;
  private noopTimer: NodeJS.Timeout | null = null;
  private version = SERVER_VERSION;
  private wireVersion = WIRE_VERSIONS['7.0']!;
  /** Whether this version has $changeStreamSplitLargeEvent. */
  private splitsLargeEvents = true;

  static async start(options: HarnessOptions = {}): Promise<MongoHarness> {
    const harness = new MongoHarness();
    await harness.listen(options);
    return harness;
  }

  private listen(options: HarnessOptions): Promise<void> {
    this.host = options.host ?? '127.0.0.1';
    this.replicaSet = options.replicaSet ?? true;
    this.noopIntervalMs = options.noopIntervalMs ?? DEFAULT_NOOP_INTERVAL_MS;
    this.version = options.version ?? SERVER_VERSION;
    const [major = 0, minor = 0, patch = 0] = this.version.split('.').map(Number);
    const wire = WIRE_VERSIONS[`${major}.${minor}`];
    if (wire === undefined) {
      throw new Error(
        `the MongoDB harness has no wire version for ${this.version}; it knows ${Object.keys(WIRE_VERSIONS).join(', ')}`,
      );
    }
    this.wireVersion = wire;
    // MongoDB manual, $changeStreamSplitLargeEvent: new in 7.0, backported to 6.0.9.
    this.splitsLargeEvents = major >= 7 || (major === 6 && minor === 0 && patch >= 9);
    this.processId = new ObjectId();
    this.startNoopWriter();
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

  /**
   * Stops as a shut-down mongod does: the port closes, every connection and cursor is gone, and
   * fail points are off (they live in memory, so a restart forgets them); collections and the
   * oplog stay for start(). A stopped harness needs no close().
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.resume();
    for (const cursor of this.cursors.values()) {
      if (cursor.kind !== 'changeStream') continue;
      cursor.stream.killed = true;
      cursor.wake?.();
    }
    this.cursors.clear();
    this.failPoints.clear();
    if (this.noopTimer) clearInterval(this.noopTimer);
    this.noopTimer = null;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port after stop(), with the same data and oplog. */
  async start(): Promise<void> {
    if (!this.stopped) return;
    await this.listen({
      host: this.host,
      port: this.port,
      replicaSet: this.replicaSet,
      noopIntervalMs: this.noopIntervalMs,
      version: this.version,
    });
    this.stopped = false;
  }

  /** The primary's no-op writer: a no-op whenever an interval passed without any write. */
  private startNoopWriter(): void {
    if (!this.replicaSet || this.noopIntervalMs <= 0 || this.noopTimer) return;
    let seen = this.store.clusterTime;
    this.noopTimer = setInterval(() => {
      if (this.store.clusterTime === seen) this.store.writeNoop();
      seen = this.store.clusterTime;
    }, this.noopIntervalMs);
    this.noopTimer.unref();
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

  /** `configureFailPoint` in process: the same fail points the command sets over the wire. */
  configureFailPoint(command: Document): Document {
    return this.failPoints.configure(command);
  }

  /**
   * The next `times` commands named `command` fail as the failCommand fail point makes them
   * fail: with `code`, carrying `labels` or else the labels the server computes (none for the
   * change-stream label of a getMore: see failGetMore), or by closing the connection.
   */
  failCommand(command: string | string[], failure: InjectedFailure): void {
    this.failPoints.configure({
      configureFailPoint: 'failCommand',
      mode: failModeOf(failure),
      data: {
        failCommands: Array.isArray(command) ? command : [command],
        ...(failure.code !== undefined ? { errorCode: failure.code } : {}),
        ...(failure.labels ? { errorLabels: failure.labels } : {}),
        ...(failure.closeConnection ? { closeConnection: true } : {}),
        ...(failure.blockTimeMS !== undefined
          ? { blockConnection: true, blockTimeMS: failure.blockTimeMS }
          : {}),
        ...(failure.appName !== undefined ? { appName: failure.appName } : {}),
      },
    });
  }

  /**
   * The next `times` getMores fail with `code` after checking out their cursor
   * (failGetMoreAfterCursorCheckout): the cursor is gone and a change stream's resumable error
   * carries ResumableChangeStreamError, as a real failure inside getMore does.
   */
  failGetMore(failure: Pick<InjectedFailure, 'code' | 'appName' | 'times'>): void {
    this.failPoints.configure({
      configureFailPoint: 'failGetMoreAfterCursorCheckout',
      mode: failModeOf(failure),
      data: {
        ...(failure.code !== undefined ? { errorCode: failure.code } : {}),
        ...(failure.appName !== undefined ? { appName: failure.appName } : {}),
      },
    });
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
    const connection: Connection = { id: this.nextConnectionId++, socket };
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
        // Whatever goes wrong with one request ends its connection, never the harness process.
        queue = queue
          .then(() => this.serve(connection, request))
          .catch(() => {
            socket.destroy();
          });
      }
    });
  }

  private async serve(connection: Connection, request: Request): Promise<void> {
    const socket = connection.socket;
    let current = request;
    for (;;) {
      if (this.pauseGate) await this.pauseGate;
      if (socket.destroyed) return;
      const reply = await this.execute(current, connection);
      if (reply === null || current.moreToCome || socket.destroyed) return;
      reply.operationTime ??= this.store.clusterTime;
      // Streaming hello (server-monitoring.md, "Awaitable hello Server Specification"): to an
      // awaitable hello that allows exhaust, every successful reply says more are to come.
      const exhaust = current.exhaustAllowed && reply.ok === 1 && isAwaitableHello(current.body);
      const { message, moreToCome } = this.encodeReply(current, reply, exhaust);
      socket.write(message);
      if (!moreToCome) return;
      // The next reply answers the same hello again, asked for with the topologyVersion just
      // sent, and responds to the reply before it (OP_MSG.md: responseTo is the previous
      // reply's requestID). It runs as a command of its own, fail points included.
      current = {
        ...current,
        requestId: message.readInt32LE(4),
        body: { ...current.body, topologyVersion: reply.topologyVersion },
      };
    }
  }

  private encodeReply(
    request: Request,
    reply: Document,
    moreToCome: boolean,
  ): { message: Buffer; moreToCome: boolean } {
    const encode = (doc: Document, more: boolean) =>
      request.opCode === OP_QUERY
        ? encodeReply(request.requestId, doc)
        : encodeMsg(request.requestId, doc, more);
    try {
      return { message: encode(reply, moreToCome), moreToCome };
    } catch (error) {
      // A reply the harness cannot build is that command's error, as a real server's would be.
      const tooLarge = error instanceof RangeError;
      const failed = {
        ok: 0,
        errmsg: `the reply could not be built: ${(error as Error).message}`,
        code: tooLarge ? 10334 : 1,
        codeName: tooLarge ? 'BSONObjectTooLarge' : 'InternalError',
        operationTime: this.store.clusterTime,
      };
      return { message: encode(failed, false), moreToCome: false };
    }
  }

  private async execute(request: Request, connection: Connection): Promise<Document | null> {
    const body = request.body;
    const name = Object.keys(body)[0] ?? '';
    const command = this.commandContext(name, body, connection);
    // Set when a getMore has checked out a change-stream cursor (CurOp's originating command).
    const state = { changeStream: isChangeStreamAggregate(name, body) };
    let labelsOverride: unknown;
    try {
      const fail = this.failPoints.failCommand(command);
      if (fail) {
        labelsOverride = fail.errorLabels;
        if (fail.blockConnection === true) {
          await new Promise((resolve) => setTimeout(resolve, Number(fail.blockTimeMS ?? 0)));
        }
        if (fail.closeConnection === true) {
          connection.socket.destroy();
          return null;
        }
        if (fail.errorCode !== undefined) {
          throw new CommandError(
            Number(fail.errorCode),
            "Failing command via 'failCommand' failpoint",
          );
        }
      }
      return await this.retryOnce(body, () =>
        this.dispatch(name, body, request, connection, state),
      );
    } catch (error) {
      if (error instanceof CommandError) {
        const labels = Array.isArray(labelsOverride)
          ? labelsOverride.map(String)
          : [
              ...new Set([
                ...error.labels,
                ...serverErrorLabels(error.code, {
                  command: command.name,
                  body,
                  changeStream: state.changeStream,
                }),
              ]),
            ];
        return {
          ok: 0,
          errmsg: error.message,
          code: error.code,
          codeName: error.codeName,
          ...(labels.length ? { errorLabels: labels } : {}),
          // appendErrorLabelsAndTopologyVersion (service_entry_point_common.cpp): a replica-set
          // member's NotPrimaryError carries its topologyVersion, so that a client can tell a
          // stale error from a state change (a shutdown error only in quiesce mode, never here).
          ...(this.replicaSet && NOT_PRIMARY_ERRORS.has(error.code)
            ? { topologyVersion: this.topologyVersion() }
            : {}),
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

  private commandContext(name: string, body: Document, connection: Connection): CommandContext {
    const db = String(body.$db ?? 'admin');
    const target = body[name];
    let namespace: string | undefined;
    if (name === 'getMore') namespace = `${db}.${String(body.collection)}`;
    else if (typeof target === 'string') namespace = `${db}.${target}`;
    return { name, namespace, appName: connection.appName };
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
    connection: Connection,
    state: { changeStream: boolean },
  ): Promise<Document> {
    const db = body.$db ?? 'admin';
    switch (name) {
      case 'hello':
      case 'isMaster':
      case 'ismaster':
        connection.appName ??= body.client?.application?.name;
        return this.hello(body, connection, name === 'hello');
      case 'configureFailPoint':
        if (db !== 'admin') {
          throw new CommandError(
            13,
            'configureFailPoint may only be run against the admin database.',
            'Unauthorized',
          );
        }
        return this.failPoints.configure(body);
      case 'ping':
      case 'endSessions':
      case 'killAllSessions':
        return { ok: 1 };
      case 'buildInfo':
      case 'buildinfo':
        return {
          version: this.version,
          versionArray: this.version.split('.').map(Number).concat(0),
          maxBsonObjectSize: 16 * 1024 * 1024,
          ok: 1,
        };
      case 'listDatabases':
        return this.listDatabases();
      case 'listCollections':
        return this.listCollections(db, body);
      case 'create':
        this.store.createCollection(db, body.create, commandOptions(body));
        return { ok: 1 };
      case 'collMod':
        this.store.modifyCollection(db, body.collMod, commandOptions(body));
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
      case 'createIndexes': {
        const created = !this.store.collection(db, body.createIndexes);
        const { before, after } = this.store.createIndexes(db, body.createIndexes, body.indexes);
        return {
          numIndexesBefore: before,
          numIndexesAfter: after,
          createdCollectionAutomatically: created,
          ok: 1,
        };
      }
      case 'dropIndexes':
        return {
          nIndexesWas: this.store.dropIndexes(db, body.dropIndexes, body.index),
          ok: 1,
        };
      case 'listIndexes':
        this.requireCollection(db, body.listIndexes);
        return this.cursorReply(
          `${db}.${body.listIndexes}`,
          this.store.listIndexes(db, body.listIndexes),
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
        return this.getMore(body, this.commandContext(name, body, connection), state);
      case 'killCursors':
        return this.killCursors(body);
      default:
        throw new CommandError(59, `no such command: '${name}'`, 'CommandNotFound');
    }
  }

  /**
   * hello, awaitable as MongoDB 4.4+ answers it (server-monitoring.md, "Awaitable hello Server
   * Specification"): with `topologyVersion` and `maxAwaitTimeMS` it replies once the topology
   * changes or that time is over. The harness's topology never changes while it runs, so that
   * is the time, unless the client's topologyVersion names another process (a restart).
   */
  private async hello(body: Document, connection: Connection, modern: boolean): Promise<Document> {
    const asked = body.topologyVersion as { processId?: unknown; counter?: unknown } | undefined;
    const maxAwaitTimeMS = body.maxAwaitTimeMS as unknown;
    // src/mongo/db/repl/replication_info.cpp (31368, 31372); hello.idl (maxAwaitTimeMS >= 0).
    if ((asked === undefined) !== (maxAwaitTimeMS === undefined)) {
      throw new CommandError(
        31368,
        asked
          ? "A request with a 'topologyVersion' must include 'maxAwaitTimeMS'"
          : "A request with 'maxAwaitTimeMS' must include a 'topologyVersion'",
      );
    }
    if (asked) {
      const counter = Number(asked.counter);
      if (counter < 0) {
        throw new CommandError(31372, 'topologyVersion must have a non-negative counter');
      }
      const wait = Number(maxAwaitTimeMS);
      if (!(wait >= 0)) {
        throw new CommandError(
          2,
          `BSON field 'maxAwaitTimeMS' value must be >= 0, actual value '${String(maxAwaitTimeMS)}'`,
        );
      }
      const ours = this.topologyVersion();
      if (asked.processId instanceof ObjectId && asked.processId.equals(ours.processId)) {
        // A replica-set member refuses a counter from its future (topology_coordinator.cpp
        // 31382); a standalone one other than its own (replication_info.cpp 51764).
        if (counter > ours.counter.toNumber() || (!this.replicaSet && counter !== 0)) {
          throw new CommandError(
            this.replicaSet ? 31382 : 51764,
            `Received a topology version with counter: ${counter} which is greater than the server topology version counter: ${ours.counter.toNumber()}`,
          );
        }
        if (counter === ours.counter.toNumber()) await waitOrClose(wait, connection.socket);
      }
    }
    return this.helloReply(body, connection.id, modern);
  }

  /** The topology of a process: its id, and a counter that only a state change would move. */
  private topologyVersion(): { processId: ObjectId; counter: Long } {
    return { processId: this.processId, counter: Long.fromNumber(0) };
  }

  private helloReply(body: Document, connectionId: number, modern: boolean): Document {
    const lastWrite = this.store.clusterTime;
    const common = {
      topologyVersion: this.topologyVersion(),
      ...(body.helloOk ? { helloOk: true } : {}),
      maxBsonObjectSize: 16 * 1024 * 1024,
      maxMessageSizeBytes: 48_000_000,
      maxWriteBatchSize: 100_000,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId,
      minWireVersion: 0,
      maxWireVersion: this.wireVersion,
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
    // and send each batch from their stored encoding as it goes out, as a real cursor streams.
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
    const out = pipeline.at(-1)?.$out;
    if (out !== undefined) {
      const target = typeof out === 'string' ? { db, coll: out } : { db: out.db, coll: out.coll };
      const docs = this.store.aggregate(db, body.aggregate, pipeline.slice(0, -1));
      this.store.replaceWith(target.db, target.coll, docs);
      return this.cursorReply(`${db}.${body.aggregate}`, [], body.cursor?.batchSize);
    }
    const merge = pipeline.at(-1)?.$merge;
    if (merge !== undefined) {
      const { target, spec } = mergeSpec(db, merge);
      const docs = this.store.aggregate(db, body.aggregate, pipeline.slice(0, -1));
      this.store.mergeInto(target.db, target.coll, docs, spec);
      return this.cursorReply(`${db}.${body.aggregate}`, [], body.cursor?.batchSize);
    }
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
    if (!this.splitsLargeEvents && stages.some((s) => '$changeStreamSplitLargeEvent' in s)) {
      throw new CommandError(
        40324,
        "Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'",
      );
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
    const cursor: ChangeStreamEntry = {
      kind: 'changeStream',
      ns: stream.namespace,
      stream,
      stash: [],
    };
    const batch = this.changeStreamBatch(
      cursor,
      Number(body.cursor?.batchSize ?? FIRST_BATCH_SIZE),
    );
    const id = batch.done ? 0n : this.registerCursor(cursor);
    return {
      cursor: {
        firstBatch: batch.events,
        postBatchResumeToken: batch.postBatchResumeToken,
        id: Long.fromBigInt(id),
        ns: stream.namespace,
      },
      ok: 1,
    };
  }

  /**
   * The next batch of a change stream, capped like any batch (takeBatch); an event that does not
   * fit is stashed for the next one, and the postBatchResumeToken then stays at the last event
   * sent (getmore_cmd.cpp batchedExecute).
   */
  private changeStreamBatch(cursor: ChangeStreamEntry, max: number) {
    const { stream, stash } = cursor;
    const events = takeBatch(
      max,
      () => {
        if (stash.length === 0 && !stream.done) stash.push(...stream.read(1));
        return stash[0];
      },
      () => stash.shift(),
    );
    const cut = stash.length > 0 && events.length > 0;
    return {
      events,
      postBatchResumeToken: cut ? (events.at(-1)!._id as Document) : stream.postBatchResumeToken,
      done: stream.done && stash.length === 0,
    };
  }

  private async getMore(
    body: Document,
    command: CommandContext,
    state: { changeStream: boolean },
  ): Promise<Document> {
    const key = String(body.getMore);
    const cursor = this.cursors.get(key);
    if (!cursor) throw new CommandError(43, `cursor id ${key} not found`, 'CursorNotFound');
    state.changeStream = cursor.kind === 'changeStream';
    try {
      return await this.nextBatch(key, cursor, body, command);
    } catch (error) {
      // An error after checkout deletes the cursor (getmore_cmd.cpp, cursorDeleter).
      this.cursors.delete(key);
      if (cursor.kind === 'changeStream') cursor.stream.killed = true;
      throw error;
    }
  }

  private async nextBatch(
    key: string,
    cursor: Cursor,
    body: Document,
    command: CommandContext,
  ): Promise<Document> {
    const fail = this.failPoints.failGetMoreAfterCursorCheckout({
      ...command,
      namespace: cursor.ns,
    });
    if (fail) {
      throw new CommandError(
        Number(fail.errorCode ?? 1),
        "Hit the 'failGetMoreAfterCursorCheckout' failpoint",
      );
    }
    // A getMore's batchSize 0 or none: as many as fit (getmore_cmd.cpp generateBatch).
    const batchSize = Number(body.batchSize ?? 0) || Number.MAX_SAFE_INTEGER;
    if (cursor.kind === 'documents') {
      const batch = takeDocuments(cursor.docs, batchSize);
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
    let batch = this.changeStreamBatch(cursor, batchSize);
    // An awaitData getMore answers once an event matches or its await time is over; oplog
    // entries the stream filters out (other collections, no-ops) do not end the wait.
    const deadline = Date.now() + Number(body.maxTimeMS ?? DEFAULT_AWAIT_MS);
    while (batch.events.length === 0 && !batch.done && Date.now() < deadline) {
      await this.awaitOplog(cursor, deadline - Date.now());
      if (cursor.stream.killed) {
        throw new CommandError(43, `cursor id ${key} not found`, 'CursorNotFound');
      }
      batch = this.changeStreamBatch(cursor, batchSize);
    }
    if (batch.done) this.cursors.delete(key);
    return {
      cursor: {
        nextBatch: batch.events,
        postBatchResumeToken: batch.postBatchResumeToken,
        id: Long.fromBigInt(batch.done ? 0n : BigInt(key)),
        ns: cursor.ns,
      },
      ok: 1,
    };
  }

  /** Waits for the next oplog entry, the await time, or the cursor being killed. */
  private awaitOplog(cursor: ChangeStreamEntry, maxMs: number): Promise<void> {
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
    // The first batch: 101 documents unless batchSize says otherwise (query_request_helper.h
    // kDefaultBatchSize), within the byte cap too.
    const size = batchSize === undefined ? FIRST_BATCH_SIZE : Number(batchSize);
    const firstBatch = takeDocuments(docs, size);
    const id = !single && docs.length ? this.registerCursor({ kind: 'documents', ns, docs }) : 0n;
    return { cursor: { firstBatch, id: Long.fromBigInt(id), ns }, ok: 1 };
  }
}

const MERGE_WHEN_MATCHED = new Set(['merge', 'replace', 'keepExisting', 'fail']);
const MERGE_WHEN_NOT_MATCHED = new Set(['insert', 'discard', 'fail']);

/**
 * `$merge: 'coll'` or `{into, on, whenMatched, whenNotMatched}` with the server's defaults
 * (`merge`, `insert`). Matching on fields other than `_id` and a pipeline for whenMatched are not
 * reproduced: they fail with a sentence that says so.
 */
function mergeSpec(
  db: string,
  merge: unknown,
): { target: { db: string; coll: string }; spec: MergeSpec } {
  const options = (typeof merge === 'string' ? { into: merge } : merge) as Document;
  const into = options.into as string | { db?: string; coll: string };
  const target =
    typeof into === 'string' ? { db, coll: into } : { db: into.db ?? db, coll: into.coll };
  const on = options.on ?? '_id';
  if (!(on === '_id' || (Array.isArray(on) && on.length === 1 && on[0] === '_id'))) {
    throw new CommandError(2, 'the harness reproduces $merge on _id only');
  }
  const whenMatched = options.whenMatched ?? 'merge';
  const whenNotMatched = options.whenNotMatched ?? 'insert';
  if (!MERGE_WHEN_MATCHED.has(whenMatched) || !MERGE_WHEN_NOT_MATCHED.has(whenNotMatched)) {
    throw new CommandError(
      2,
      `the harness reproduces $merge with whenMatched ${[...MERGE_WHEN_MATCHED].join('|')} and whenNotMatched ${[...MERGE_WHEN_NOT_MATCHED].join('|')} only`,
    );
  }
  return { target, spec: { whenMatched, whenNotMatched } as MergeSpec };
}

function failModeOf(failure: { times?: number | 'alwaysOn' }): Document | string {
  return failure.times === 'alwaysOn' ? 'alwaysOn' : { times: failure.times ?? 1 };
}

function isAwaitableHello(body: Document): boolean {
  const name = Object.keys(body)[0] ?? '';
  const hello = name === 'hello' || name === 'isMaster' || name === 'ismaster';
  return hello && body.topologyVersion !== undefined && body.maxAwaitTimeMS !== undefined;
}

/** Resolves after `ms`, or as soon as `socket` closes (an answer then has nobody to go to). */
function waitOrClose(ms: number, socket: net.Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      socket.off('close', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    socket.once('close', done);
  });
}

function isChangeStreamAggregate(name: string, body: Document): boolean {
  const first = name === 'aggregate' && Array.isArray(body.pipeline) ? body.pipeline[0] : undefined;
  return typeof first === 'object' && first !== null && '$changeStream' in first;
}

/**
 * One batch as a real server builds it (src/mongo/db/query/find_common.h,
 * FindCommon::BSONObjCursorAppender and haveSpaceForNext): at most `max` documents; the first
 * always, so a cursor always makes progress, each further one only while the batch stays within
 * MAX_BATCH_BYTES, whatever batchSize asks. `peek` shows the next document, `take` consumes it; one
 * that does not fit stays for the next batch.
 */
function takeBatch(max: number, peek: () => Document | undefined, take: () => void): Document[] {
  const batch: Document[] = [];
  let bytes = 0;
  while (batch.length < max) {
    const doc = peek();
    if (doc === undefined) break;
    const size = doc instanceof EncodedDocument ? doc.length : BSON.calculateObjectSize(doc);
    if (size > MAX_DOCUMENT_BYTES) throw tooLarge(size);
    if (batch.length > 0 && bytes + size > MAX_BATCH_BYTES) break;
    take();
    batch.push(doc);
    bytes += size;
  }
  return batch;
}

/** The next batch of a documents cursor, taken off the front of `docs` as their stored bytes. */
function takeDocuments(docs: Document[], max: number): Document[] {
  let taken = 0;
  const batch = takeBatch(
    max,
    () => {
      if (taken >= docs.length) return undefined;
      try {
        return encoded(docs[taken]!);
      } catch (error) {
        // js-bson encodes at most 17 MiB: a document it cannot encode is over the limit anyway.
        if (error instanceof RangeError) throw tooLarge(BSON.calculateObjectSize(docs[taken]!));
        throw error;
      }
    },
    () => taken++,
  );
  docs.splice(0, taken);
  return batch;
}

function tooLarge(size: number): CommandError {
  return new CommandError(
    10334,
    `BSONObj size: ${size} (0x${size.toString(16).toUpperCase()}) is invalid. Size must be between 0 and ${MAX_DOCUMENT_BYTES}(16MB)`,
    'BSONObjectTooLarge',
  );
}
