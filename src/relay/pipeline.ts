// source -> convert -> fold -> write -> checkpoint. Wires the relay's jobs: the checkpoint read
// (or the start position noted), the initial snapshot (copy.ts) when asked and not done, then
// the change stream (stream.ts) from the position noted before the copy.
import type { MongoClient } from 'mongodb';
import type { Logger } from '../log.js';
import { RelayMetrics, type Health } from '../metrics.js';
import { listCollections } from '../mongo/snapshot.js';
import { currentPosition } from '../mongo/source.js';
import { withRetry } from '../retry.js';
import { RelayStats } from '../stats.js';
import type { AnyDb, TargetWriter } from '../target/writer.js';
import { RelayContext, type RelayOptions } from './context.js';
import { copySnapshot, type SnapshotProgress } from './copy.js';
import { RelayHealth, type Side } from './health.js';
import { streamChanges } from './stream.js';

export type { OnDrop, RelayOptions, SnapshotMode } from './context.js';

/** How to wait for one side at start: which errors mean "not there yet", and for how long. */
export interface StartWait {
  side: Side;
  isTransient(error: unknown): boolean;
  /** Null: until stopped. */
  timeoutMs: number | null;
}

export class Relay {
  readonly stats = new RelayStats();
  readonly metrics = new RelayMetrics(this.stats);
  private readonly monitor: RelayHealth;
  private markReady!: () => void;
  /** Settles once the start position is fixed: every later source write will be relayed. */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));

  /** `db` is the target's, not connected yet: the writer comes to `run` once it is. */
  constructor(
    private readonly client: MongoClient,
    db: AnyDb,
    private readonly options: RelayOptions,
    private readonly log: Logger,
  ) {
    this.monitor = new RelayHealth(this.metrics, this.stats, db, client);
  }

  /** What the relay is doing now, for progress lines. */
  get status(): string {
    const { database, collections } = this.options;
    return `${this.monitor.phase} ${database}${collections ? `.${collections.join(',')}` : ''}`;
  }

  health(): Promise<Health> {
    return this.monitor.check();
  }

  /**
   * Connects to one side (`open`) before the relay runs. While it is unreachable (not started
   * yet, restarting, a network cut: `wait.isTransient`) it waits and tries again with backoff, as
   * in an outage later: one warning, /healthz 503, relay_outages_total and
   * relay_retries_total{side}; for `wait.timeoutMs` at most (null: until stopped), after which
   * the last error is thrown. Any other error (credentials refused, a standalone server, a
   * database that does not exist) is thrown at once. False when `signal` aborts first.
   */
  async connect(open: () => Promise<void>, wait: StartWait, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return false;
    this.monitor.phase = 'connecting';
    const started = Date.now();
    const { timeoutMs } = wait;
    const connected = withRetry(open, {
      what: wait.side === 'mongodb' ? 'MongoDB' : 'target',
      isTransient: (error) =>
        wait.isTransient(error) && (timeoutMs === null || Date.now() - started < timeoutMs),
      log: this.log,
      signal,
      ...this.monitor.retrying(wait.side),
    }).then(() => true);
    // A stop ends the wait at once; the try in flight (up to a connection timeout) is dropped,
    // and the caller closes the client.
    connected.catch(() => {});
    const stopped = new Promise<false>((resolve) =>
      signal.addEventListener('abort', () => resolve(false), { once: true }),
    );
    return Promise.race([connected, stopped]);
  }

  /** Runs until `signal` aborts (after the batch in flight is written) or a fatal error. */
  async run(writer: TargetWriter, signal: AbortSignal): Promise<void> {
    const { client, log } = this;
    const ctx = new RelayContext(
      client,
      writer,
      this.options,
      log,
      this.stats,
      this.metrics,
      this.monitor,
    );
    const { database, collections, snapshot } = ctx.options;
    ctx.collections =
      collections ??
      (await ctx.mongo(
        () => listCollections(client, database, (name) => ctx.noteLeftOut(name)),
        signal,
      ));
    if (collections) await ctx.mongo(() => this.warnMissing(collections), signal);
    await ctx.target(() => writer.prepare(ctx.collections), signal);
    const stored = await ctx.target(() => writer.readCheckpoint(), signal);
    if (stored?.position) {
      ctx.checkpoint = stored;
      log.info(`resuming from checkpoint ${writer.options.streamId}`, {
        eventTime: stored.eventTime?.toISOString() ?? null,
        snapshotPending: stored.snapshot !== null,
      });
    } else {
      // Note the stream position before copying: changes during the copy replay afterwards.
      const position = await ctx.mongo(() => currentPosition(client, ctx.options), signal);
      const progress: SnapshotProgress | null = snapshot === 'never' ? null : { collections: {} };
      ctx.checkpoint = { position, snapshot: progress, eventTime: null };
      await ctx.saveCheckpoint(signal);
    }
    this.markReady();
    if (ctx.checkpoint.snapshot) {
      await copySnapshot(ctx, signal);
      if (signal.aborted) return;
    } else if (snapshot === 'only') {
      log.info(`the snapshot of ${this.status} was completed earlier; nothing to copy`);
    }
    if (snapshot === 'only') return;
    await streamChanges(ctx, ctx.checkpoint.position!, signal);
  }

  /**
   * A collection that does not exist yet is waited for, as Debezium and Monstache do: nothing to
   * copy, and the stream follows it from its first write. One line says so, in case the name is
   * misspelt.
   */
  private async warnMissing(collections: string[]): Promise<void> {
    const { database } = this.options;
    const existing = new Set(await listCollections(this.client, database));
    const missing = collections.filter((c) => !existing.has(c));
    if (missing.length === 0) return;
    this.log.warn(
      `collection ${missing.map((c) => `${database}.${c}`).join(', ')} does not exist yet; waiting for it (nothing to copy, its first write will be relayed). If that is not expected, check --database and --collection`,
    );
  }
}
