// source -> convert -> fold -> write -> checkpoint. The initial snapshot first (when asked and
// not done), then the change stream from the position noted before the copy, one batch read
// while the previous one is written, so a slow target slows reading instead of growing a queue.
import { sql } from 'kysely';
import type { Document, MongoClient } from 'mongodb';
import { convertEvent, type ControlEvent, type RowEvent } from './convert/event.js';
import { foldBatch } from './convert/fold.js';
import { ConfigError, errorMessage } from './errors.js';
import type { Logger } from './log.js';
import { isTransientMongoError } from './mongo/errors.js';
import { listCollections, resumeAfter, snapshotBatches } from './mongo/snapshot.js';
import {
  ChangeSource,
  nextOperationTime,
  type SourceBatch,
  type SourceOptions,
  type StreamPosition,
} from './mongo/source.js';
import { withRetry } from './retry.js';
import { RelayMetrics, type Health } from './metrics.js';
import { RelayStats, eventTimeMs } from './stats.js';
import { classifyTargetError } from './target/errors.js';
import type { Checkpoint, TargetWriter, WriteResult } from './target/writer.js';

export type SnapshotMode = 'initial' | 'never' | 'only';
export type OnDrop = 'ignore' | 'truncate' | 'drop';

export interface RelayOptions extends SourceOptions {
  snapshot: SnapshotMode;
  onDrop: OnDrop;
  /** How often an idle relay stores the stream's latest position (so it never falls off the oplog). */
  idleCheckpointMs: number;
}

interface SnapshotProgress {
  collections: Record<string, { lastId?: unknown; done?: boolean }>;
}

export type Side = 'target' | 'mongodb';

export class Relay {
  readonly stats = new RelayStats();
  readonly metrics = new RelayMetrics(this.stats);
  /** Sides in an outage now (retrying), with when it started. */
  private readonly outages = new Map<Side, number>();
  private streamOpen = false;
  private collections: string[] = [];
  private checkpoint: Checkpoint = { position: null, snapshot: null, eventTime: null };
  /** Position after the last batch read: where a stream reopened after a fault continues. */
  private lastReadPosition: StreamPosition | null = null;
  private phase = 'starting';
  private markReady!: () => void;
  /** Settles once the start position is fixed: every later source write will be relayed. */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));

  constructor(
    private readonly client: MongoClient,
    private readonly writer: TargetWriter,
    private readonly options: RelayOptions,
    private readonly log: Logger,
  ) {}

  /** What the relay is doing now, for progress lines. */
  get status(): string {
    return `${this.phase} ${this.options.database}${this.options.collections ? `.${this.options.collections.join(',')}` : ''}`;
  }

  /** Retry hooks that keep the outage state, metrics and health of one side. */
  private retrying(side: Side) {
    return {
      onRetry: () => this.metrics.retries.inc({ side }),
      onOutage: (state: 'start' | 'end', seconds: number) => {
        if (state === 'start') {
          this.outages.set(side, Date.now());
          this.metrics.outages.inc({ side });
        } else {
          this.outages.delete(side);
          this.metrics.outageSeconds.inc({ side }, seconds);
        }
      },
    };
  }

  private target<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(fn, {
      what: 'target',
      isTransient: (e) => classifyTargetError(e) === 'transient',
      log: this.log,
      signal,
      ...this.retrying('target'),
    });
  }

  /**
   * Healthy while the change stream is open (or the initial snapshot runs, before it opens),
   * MongoDB is not in an outage, and the target answers a query within two seconds.
   */
  async health(): Promise<Health> {
    const detail = { phase: this.phase, lagSeconds: this.stats.lagSeconds() };
    for (const [side, since] of this.outages) {
      return {
        ok: false,
        ...detail,
        reason: `${side} unavailable for ${((Date.now() - since) / 1000).toFixed(1)}s`,
      };
    }
    // The target first: when it is down, that is the cause, whatever state the stream is in.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('target did not answer within 2s')), 2000);
    });
    try {
      await Promise.race([sql`SELECT 1`.execute(this.writer.db), timeout]);
    } catch (error) {
      return { ok: false, ...detail, reason: `target does not answer: ${errorMessage(error)}` };
    } finally {
      clearTimeout(timer);
    }
    if (this.phase !== 'snapshot' && !this.streamOpen) {
      return { ok: false, ...detail, reason: `change stream not open (${this.phase})` };
    }
    return { ok: true, ...detail };
  }

  /** Runs until `signal` aborts (after the batch in flight is written) or a fatal error. */
  async run(signal: AbortSignal): Promise<void> {
    const { database, collections, snapshot } = this.options;
    this.collections = collections ?? (await listCollections(this.client, database));
    if (collections) await this.requireCollections(collections);
    await this.target(() => this.writer.prepare(this.collections), signal);
    const stored = await this.target(() => this.writer.readCheckpoint(), signal);
    if (stored?.position) {
      this.checkpoint = stored;
      this.log.info(`resuming from checkpoint ${this.writer.options.streamId}`, {
        eventTime: stored.eventTime?.toISOString() ?? null,
        snapshotPending: stored.snapshot !== null,
      });
    } else {
      // Note the stream position before copying: changes during the copy replay afterwards.
      const position = { startAtOperationTime: await nextOperationTime(this.client, database) };
      const progress: SnapshotProgress | null = snapshot === 'never' ? null : { collections: {} };
      this.checkpoint = { position, snapshot: progress, eventTime: null };
      await this.saveCheckpoint(signal);
    }
    this.markReady();
    if (this.checkpoint.snapshot) {
      await this.copy(signal);
      if (signal.aborted) return;
    } else if (snapshot === 'only') {
      this.log.info(`the snapshot of ${this.status} was completed earlier; nothing to copy`);
    }
    if (snapshot === 'only') return;
    await this.stream(this.checkpoint.position!, signal);
  }

  private async requireCollections(collections: string[]): Promise<void> {
    const existing = new Set(await listCollections(this.client, this.options.database));
    const missing = collections.filter((c) => !existing.has(c));
    if (missing.length > 0 && this.options.snapshot !== 'never') {
      throw new ConfigError(
        `collection ${missing.map((c) => `${this.options.database}.${c}`).join(', ')} does not exist; check --database and --collection (or use --snapshot never to wait for it)`,
      );
    }
  }

  private async saveCheckpoint(signal?: AbortSignal): Promise<void> {
    await this.target(() => this.writer.saveCheckpoint(this.writer.db, this.checkpoint), signal);
    this.stats.lastCheckpointMs = Date.now();
  }

  // ---- snapshot ----------------------------------------------------------------------------

  private async copy(signal: AbortSignal): Promise<void> {
    const progress = this.checkpoint.snapshot as SnapshotProgress;
    for (const collection of this.collections) {
      const state = (progress.collections[collection] ??= {});
      if (state.done) continue;
      this.phase = 'snapshot';
      const namespace = `${this.options.database}.${collection}`;
      const estimate = await this.client
        .db(this.options.database)
        .collection(collection)
        .estimatedDocumentCount();
      this.metrics.snapshotEstimated.set({ namespace }, estimate);
      this.log.info(`copying ${namespace}`, {
        estimatedDocuments: estimate,
        resumingAfter: state.lastId === undefined ? null : String(state.lastId),
      });
      // A MongoDB fault mid-copy is retried like any other: the copy starts again after the last
      // _id it wrote.
      const finished = await withRetry(
        () => this.copyCollection(collection, state, namespace, signal),
        {
          what: 'MongoDB',
          isTransient: isTransientMongoError,
          log: this.log,
          signal,
          ...this.retrying('mongodb'),
        },
      );
      if (!finished) return;
      state.done = true;
      await this.saveCheckpoint(signal);
      this.log.info(`copied ${this.options.database}.${collection}`);
    }
    this.checkpoint.snapshot = null;
    await this.saveCheckpoint(signal);
    this.log.info(`snapshot complete: ${this.stats.snapshotDocs} documents`);
  }

  /** Copies one collection after `state.lastId`; false when stopped before the end. */
  private async copyCollection(
    collection: string,
    state: { lastId?: unknown },
    namespace: string,
    signal: AbortSignal,
  ): Promise<boolean> {
    const resume = await resumeAfter(this.client, this.options.database, collection, state.lastId);
    if (resume.mixedTypes) {
      this.log.warn(
        `${namespace} has _ids of several BSON types: copying it again from the start, since resuming after the last _id would skip the other types`,
      );
    }
    const batches = snapshotBatches(
      this.client,
      this.options.database,
      collection,
      this.options.batchSize,
      resume.afterId,
    );
    let pending = readAhead(batches.next());
    try {
      while (true) {
        const next = await pending;
        if (next.done) return true;
        if (signal.aborted) return false;
        pending = readAhead(batches.next());
        const docs = next.value;
        const rows = docs.map((doc) => this.snapshotRow(collection, doc));
        const result = await this.target(() => {
          // The checkpoint written with these rows names their last _id.
          state.lastId = docs.at(-1)!._id;
          return this.writer.write(foldBatch(rows), this.checkpoint);
        }, signal);
        this.stats.snapshotDocs += docs.length;
        this.metrics.snapshotCopied.inc({ namespace }, docs.length);
        this.countDeadLetters(result);
      }
    } finally {
      await batches.return(undefined);
    }
  }

  private snapshotRow(collection: string, doc: Document): RowEvent {
    const event = {
      operationType: 'insert',
      ns: { db: this.options.database, coll: collection },
      documentKey: { _id: doc._id },
      fullDocument: doc,
    };
    return convertEvent(event, this.writer.dialect.objectKey) as RowEvent;
  }

  // ---- change stream -----------------------------------------------------------------------

  private async stream(position: StreamPosition, signal: AbortSignal): Promise<void> {
    const source = new ChangeSource(this.client, this.options);
    this.phase = 'streaming';
    source.open(position);
    let reopen = false;
    const read = () =>
      withRetry(
        async () => {
          if (reopen) {
            await source.close();
            source.open(this.lastReadPosition ?? position);
            reopen = false;
          }
          try {
            const batch = await source.next();
            this.streamOpen = true;
            this.lastReadPosition = batch.position ?? this.lastReadPosition;
            return batch;
          } catch (error) {
            this.log.debug(`reading the change stream failed: ${errorMessage(error)}`);
            this.streamOpen = false;
            reopen = true;
            throw error;
          }
        },
        {
          what: 'MongoDB',
          isTransient: isTransientMongoError,
          log: this.log,
          signal,
          ...this.retrying('mongodb'),
        },
      );
    let pending: Promise<SourceBatch> | null = readAhead(read());
    try {
      while (pending) {
        const batch: SourceBatch = await pending;
        pending = signal.aborted ? null : readAhead(read());
        await this.apply(batch, signal);
      }
    } finally {
      await pending?.catch(() => undefined);
      this.streamOpen = false;
      await source.close();
    }
  }

  private async apply(batch: SourceBatch, signal: AbortSignal): Promise<void> {
    const { events, position } = batch;
    this.stats.recordRead(events);
    countByLabels(events, (labels, n) => this.metrics.eventsRead.inc(labels, n));
    if (events.length === 0) {
      this.stats.caughtUp = true;
      const idleFor = Date.now() - (this.stats.lastCheckpointMs ?? 0);
      if (position && idleFor >= this.options.idleCheckpointMs) {
        this.checkpoint = { ...this.checkpoint, position };
        await this.saveCheckpoint(signal);
      }
      return;
    }
    const converted = events.map((e) => convertEvent(e, this.writer.dialect.objectKey));
    const rows = converted.filter((c): c is RowEvent => c.type === 'row');
    const control = converted.find((c): c is ControlEvent => c.type === 'control');
    const last = events.at(-1)!;
    const lastTime = eventTimeMs(last);
    const next: Checkpoint = {
      position: position ?? this.checkpoint.position,
      snapshot: null,
      eventTime: lastTime === null ? this.checkpoint.eventTime : new Date(lastTime),
    };
    const started = process.hrtime.bigint();
    if (rows.length > 0) {
      const result = await this.target(
        () => this.writer.write(foldBatch(rows), control ? null : next),
        signal,
      );
      this.countDeadLetters(result);
    }
    this.checkpoint = next;
    if (control) {
      await this.target(() => this.applyControl(control), signal);
      await this.saveCheckpoint(signal);
    } else {
      this.stats.lastCheckpointMs = Date.now();
    }
    this.metrics.batchSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    const committed = Date.now();
    this.metrics.observeLatency(
      events.filter((e) => e.wallTime instanceof Date).map((e) => (e.wallTime as Date).getTime()),
      committed,
    );
    this.metrics.batches.inc();
    countByLabels(events, (labels, n) => this.metrics.eventsWritten.inc(labels, n));
    this.stats.recordWritten(events);
  }

  private async applyControl(control: ControlEvent): Promise<void> {
    const { operation } = control;
    const ns = `${this.options.database}${control.collection ? `.${control.collection}` : ''}`;
    if (operation === 'invalidate') {
      this.log.info(`change stream on ${ns} invalidated; reopened after it with startAfter`);
      return;
    }
    if (operation !== 'drop' && operation !== 'rename' && operation !== 'dropDatabase') {
      this.log.debug(`ignoring ${operation} event on ${ns}`);
      return;
    }
    const affected =
      operation === 'dropDatabase'
        ? this.collections
        : this.collections.filter((c) => c === control.collection);
    const detail =
      operation === 'rename' ? ` to ${control.event.to?.db}.${control.event.to?.coll}` : '';
    const mode = this.options.onDrop;
    this.log.warn(`${operation} of ${ns}${detail} in the source; --on-drop ${mode}`, {
      tables: affected.map((c) => this.writer.options.tableFor(c)),
    });
    if (mode === 'ignore') return;
    for (const collection of affected) await this.writer.clear(collection, mode);
  }

  private countDeadLetters(result: WriteResult): void {
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

/** Counts events per (operation, namespace), so counters move once per label set and batch. */
function countByLabels(
  events: Document[],
  add: (labels: { operation: string; namespace: string }, n: number) => void,
): void {
  const counts = new Map<string, { labels: { operation: string; namespace: string }; n: number }>();
  for (const event of events) {
    const ns = event.ns as { db?: string; coll?: string } | undefined;
    const operation = String(event.operationType);
    const namespace = ns?.coll ? `${ns.db}.${ns.coll}` : (ns?.db ?? '');
    const key = `${operation}\u0000${namespace}`;
    const entry = counts.get(key);
    if (entry) entry.n++;
    else counts.set(key, { labels: { operation, namespace }, n: 1 });
  }
  for (const { labels, n } of counts.values()) add(labels, n);
}

/**
 * A read that runs while the previous batch is written: its failure is raised where it is
 * awaited, not as an unhandled rejection (which would end the process) while the write runs.
 */
function readAhead<T>(read: Promise<T>): Promise<T> {
  read.catch(() => {});
  return read;
}
