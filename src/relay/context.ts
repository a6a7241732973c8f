// What every job of the relay shares: the clients, the settings, the checkpoint in memory, and
// retries that keep health and metrics up to date. The jobs (copy, stream, control) take it.
import type { MongoClient } from 'mongodb';
import type { ChangeEvent } from '../convert/change.js';
import type { Logger } from '../log.js';
import { GarbagePacer } from '../memory.js';
import type { RelayMetrics } from '../metrics.js';
import { isTransientMongoError } from '../mongo/errors.js';
import { isLeftOutWrite, leftOutBecause, temporaryOrigin } from '../mongo/namespaces.js';
import type { SourceOptions } from '../mongo/source.js';
import { withRetry } from '../retry.js';
import type { RelayStats } from '../stats.js';
import type { Checkpoint, TargetWriter, WriteResult } from '../target/writer.js';
import type { RelayHealth } from './health.js';

export type SnapshotMode = 'initial' | 'never' | 'only';
export type OnDrop = 'ignore' | 'truncate' | 'drop';

export interface RelayOptions extends SourceOptions {
  snapshot: SnapshotMode;
  onDrop: OnDrop;
  /** How often an idle relay stores the stream's latest position (so it never falls off the oplog). */
  idleCheckpointMs: number;
}

/** How long MongoDB operations fail before the client is connected anew (reconnectIfStuck). */
export const MONGO_STUCK_MS = 10_000;

export class RelayContext {
  /** The collections relayed: those asked for, or every collection of the database. */
  collections: string[] = [];
  /** The checkpoint as last written (or about to be written with the batch in flight). */
  checkpoint: Checkpoint = { position: null, snapshot: null, eventTime: null };
  /** Told the bytes of each batch once written: its copies are freed without delay. */
  readonly garbage: GarbagePacer;

  constructor(
    readonly client: MongoClient,
    readonly writer: TargetWriter,
    readonly options: RelayOptions,
    readonly log: Logger,
    readonly stats: RelayStats,
    readonly metrics: RelayMetrics,
    readonly health: RelayHealth,
  ) {
    this.garbage = new GarbagePacer(options.batchBytes);
  }

  /** Runs a target operation, retrying transient faults with backoff. */
  target<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(fn, {
      what: 'target',
      isTransient: (e) => this.writer.dialect.classifyError(e).kind === 'transient',
      log: this.log,
      signal,
      ...this.health.retrying('target'),
    });
  }

  /**
   * Runs a MongoDB operation, retrying transient faults with backoff. An operation that was in
   * flight when the client was connected anew (reconnectIfStuck) is retried whatever its error:
   * closing the client ended it.
   */
  mongo<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let startedOn = this.mongoConnection;
    const attempt = async () => {
      await this.reconnectIfStuck();
      startedOn = this.mongoConnection;
      try {
        const result = await fn();
        this.mongoFailingSince = null;
        return result;
      } catch (error) {
        this.mongoFailingSince ??= Date.now();
        throw error;
      }
    };
    return withRetry(attempt, {
      what: 'MongoDB',
      isTransient: (error) => isTransientMongoError(error) || startedOn !== this.mongoConnection,
      log: this.log,
      signal,
      ...this.health.retrying('mongodb'),
    });
  }

  /**
   * How many times the client was closed to be connected anew. Closing it closes every cursor
   * and change stream opened on it, by any job: one opened under an earlier count is gone and
   * must be opened again (a read from it fails with "Cursor is exhausted", which is no fault of
   * MongoDB's and would not be retried).
   */
  get mongoConnection(): number {
    return this.reconnects;
  }

  private reconnects = 0;
  /** When MongoDB operations started failing with no success since; null while they pass. */
  private mongoFailingSince: number | null = null;
  /** The client was closed to be connected anew, and connecting has not succeeded yet. */
  private mongoClosed = false;
  /** The reconnect under way: every job waits for it rather than use a client being closed. */
  private reconnecting: Promise<void> | null = null;

  /**
   * Connects the client anew after MongoDB operations have failed for MONGO_STUCK_MS. A client
   * can stay unable to reach a server that is back: node-mongodb-native 7.9 waits forever for
   * 'drain' when it writes to a socket that a drop of every connection has destroyed but whose
   * 'close' has not run yet, and when that is its polling monitor's hello, no server is selected
   * again. Seen only against a server whose hello lacks topologyVersion (the test harness before
   * it had one); with one (MongoDB 4.4+) the driver resets its monitor on the network error
   * first, so this is a safety net for a polling monitor (serverMonitoringMode=poll, FaaS
   * platforms) whose heartbeat lands in that window. A new connection starts a new monitor; for
   * a server that is really down it costs one more failed connect. The copy of a renamed-in
   * collection runs beside the stream, so two jobs can get here at once: they share one
   * reconnect.
   */
  private async reconnectIfStuck(): Promise<void> {
    if (this.reconnecting) return this.reconnecting;
    const since = this.mongoFailingSince;
    if (!this.mongoClosed && (since === null || Date.now() - since < MONGO_STUCK_MS)) return;
    this.reconnecting = this.reconnect(since).finally(() => (this.reconnecting = null));
    return this.reconnecting;
  }

  private async reconnect(since: number | null): Promise<void> {
    if (!this.mongoClosed) {
      this.log.warn(
        `MongoDB operations have failed for ${Math.round((Date.now() - since!) / 1000)}s; connecting to MongoDB anew`,
      );
      this.mongoClosed = true;
      this.reconnects++;
      this.metrics.mongoReconnects.inc();
      await this.client.close().catch(() => undefined);
    }
    await this.client.connect();
    this.mongoClosed = false;
    this.mongoFailingSince = Date.now();
  }

  /**
   * Notes a collection written to: a whole-database relay follows collections created after it
   * started as well, so that a dropDatabase empties or drops their tables too.
   */
  follow(collection: string): void {
    if (this.options.collections === null && !this.collections.includes(collection)) {
      this.collections = [...this.collections, collection];
    }
  }

  /**
   * Whether the relay leaves this event out: a write into a collection a whole-database relay
   * does not relay (mongo/namespaces.ts). Says so once per collection.
   */
  leavesOut(event: ChangeEvent): boolean {
    if (!isLeftOutWrite(event, this.options.collections)) return false;
    this.noteLeftOut(event.ns!.coll!);
    return true;
  }

  /** Collections said to be left out (temporary ones aside). */
  private readonly leftOut = new Set<string>();
  private lastTemporary: string | null = null;

  /**
   * Logs once per collection that a whole-database relay leaves it out, and why. Each $out or
   * rename names a new temporary collection: only the last is remembered (a relay running for
   * months would gather them all), and they are told at debug level, as routine.
   */
  noteLeftOut(collection: string): void {
    const line = () =>
      `leaving out ${this.options.database}.${collection}: ${leftOutBecause(collection)}`;
    if (temporaryOrigin(collection) !== null) {
      if (collection !== this.lastTemporary) this.log.debug(line());
      this.lastTemporary = collection;
    } else if (!this.leftOut.has(collection)) {
      this.leftOut.add(collection);
      this.log.info(line());
    }
  }

  async saveCheckpoint(signal?: AbortSignal): Promise<void> {
    await this.target(() => this.writer.saveCheckpoint(this.writer.db, this.checkpoint), signal);
    this.stats.lastCheckpointMs = Date.now();
  }

  countDeadLetters(result: WriteResult): void {
    if (result.deadLetters.length === 0) return;
    this.stats.deadLetters += result.deadLetters.length;
    for (const letter of result.deadLetters) {
      this.metrics.deadLetters.inc({ namespace: `${this.options.database}.${letter.collection}` });
      this.log.warn(
        `dead-lettered ${this.options.database}.${letter.collection} ${letter.oid}: ${letter.error}`,
      );
    }
  }
}

/**
 * How many bytes of events the next read may take while a batch of `inFlightBytes` is written,
 * so that both stay within `batchBytes` (plus the one document that closes a batch): half of
 * it, or what the batch in flight leaves if less. 0 when the batch in flight fills it alone (a
 * document larger than half of it): the next read then waits until that batch is written.
 */
export function readAheadBytes(batchBytes: number, inFlightBytes: number): number {
  const half = Math.max(1, Math.floor(batchBytes / 2));
  return Math.max(0, Math.min(half, batchBytes - inFlightBytes));
}

/**
 * A read that runs while the previous batch is written: its failure is raised where it is
 * awaited, not as an unhandled rejection (which would end the process) while the write runs.
 */
export function readAhead<T>(read: Promise<T>): Promise<T> {
  read.catch(() => {});
  return read;
}

/**
 * A read that failed because the relay was stopped during an outage (a retry gives up once
 * `signal` aborts) is no error: the result is null and the caller stops as it would anyway.
 */
export async function unlessStopped<T>(read: Promise<T>, signal: AbortSignal): Promise<T | null> {
  try {
    return await read;
  } catch (error) {
    if (signal.aborted) return null;
    throw error;
  }
}
