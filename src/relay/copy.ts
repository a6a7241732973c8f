// The initial snapshot, and the copy of a collection replaced by a rename: each collection copied
// in `_id` order, in batches written with a checkpoint naming the last `_id`, so an interrupted
// copy resumes after it.
import { bsonId } from '../convert/bson.js';
import { ChangeEvent } from '../convert/change.js';
import { convertEvent, type RowEvent } from '../convert/event.js';
import { foldBatch } from '../convert/fold.js';
import { resumeAfter, SnapshotReader, type SnapshotBatch } from '../mongo/snapshot.js';
import { readAhead, readAheadBytes, unlessStopped, type RelayContext } from './context.js';

export interface SnapshotProgress {
  /** Only these collections (one replaced by a rename); every relayed one when absent. */
  only?: string[];
  collections: Record<string, { lastId?: unknown; done?: boolean }>;
}

/** Copies every collection not copied yet; returns when done or stopped. */
export async function copySnapshot(ctx: RelayContext, signal: AbortSignal): Promise<void> {
  const { client, options, log } = ctx;
  const progress = ctx.checkpoint.snapshot as SnapshotProgress;
  for (const collection of progress.only ?? ctx.collections) {
    const state = (progress.collections[collection] ??= {});
    if (state.done) continue;
    ctx.health.phase = 'snapshot';
    const namespace = `${options.database}.${collection}`;
    const estimate = await ctx.mongo(
      () => client.db(options.database).collection(collection).estimatedDocumentCount(),
      signal,
    );
    ctx.metrics.snapshotEstimated.set({ namespace }, estimate);
    log.info(`copying ${namespace}`, {
      estimatedDocuments: estimate,
      resumingAfter: state.lastId === undefined ? null : String(state.lastId),
    });
    const finished = await copyCollection(ctx, collection, state, namespace, signal);
    if (!finished) return;
    state.done = true;
    await ctx.saveCheckpoint(signal);
    log.info(`copied ${namespace}`);
  }
  ctx.checkpoint.snapshot = null;
  await ctx.saveCheckpoint(signal);
  if (progress.only) log.info(`copy of ${progress.only.join(', ')} complete; streaming again`);
  else log.info(`snapshot complete: ${ctx.stats.snapshotDocs} documents`);
}

/**
 * Copies a collection a rename replaced, as a snapshot of that one collection: the checkpoint
 * (already past the rename event) names it until done, so a relay stopped meanwhile resumes it.
 */
export async function copyRenamedIn(
  ctx: RelayContext,
  collection: string,
  signal: AbortSignal,
): Promise<void> {
  const progress: SnapshotProgress = { only: [collection], collections: {} };
  ctx.checkpoint = { ...ctx.checkpoint, snapshot: progress };
  await ctx.saveCheckpoint(signal);
  await copySnapshot(ctx, signal);
  ctx.health.phase = 'streaming';
}

/**
 * Copies one collection after `state.lastId`; false when stopped before the end. A read that
 * fails with a transient fault (a restart, a cursor lost while the target was down) is retried
 * with a new query after the last _id written.
 */
async function copyCollection(
  ctx: RelayContext,
  collection: string,
  state: { lastId?: unknown },
  namespace: string,
  signal: AbortSignal,
): Promise<boolean> {
  const { client, options } = ctx;
  let reader: SnapshotReader | null = null;
  /** The client's connection the cursor was opened on; connecting anew closed it. */
  let openedOn = ctx.mongoConnection;
  const open = async () => {
    openedOn = ctx.mongoConnection;
    const resume = await resumeAfter(client, options.database, collection, state.lastId);
    if (resume.mixedTypes) {
      ctx.log.warn(
        `${namespace} has _ids of several BSON types: copying it again from the start, since resuming after the last _id would skip the other types`,
      );
    }
    return new SnapshotReader(
      client,
      options.database,
      collection,
      options.batchSize,
      resume.afterId,
    );
  };
  // state.lastId is set before a batch's write starts, so a read failing meanwhile re-opens
  // after that batch.
  const read = (maxBytes: number) =>
    ctx.mongo(async () => {
      try {
        if (openedOn !== ctx.mongoConnection) {
          await reader?.close().catch(() => undefined);
          reader = null;
        }
        reader ??= await open();
        return await reader.next(maxBytes);
      } catch (error) {
        await reader?.close().catch(() => undefined);
        reader = null;
        throw error;
      }
    }, signal);
  let pending: Promise<SnapshotBatch> | null = null;
  try {
    while (true) {
      pending ??= readAhead(read(readAheadBytes(options.batchBytes, 0)));
      const next = await unlessStopped(pending, signal);
      pending = null;
      if (next?.documents.length === 0) return true;
      if (!next || signal.aborted) return false;
      // The next batch is read while this one is written, in the room this one leaves.
      const room = readAheadBytes(options.batchBytes, next.bytes);
      if (room > 0) pending = readAhead(read(room));
      const docs = next.documents;
      const ns = { db: ctx.options.database, coll: collection };
      const rows = docs.map(
        (doc) =>
          convertEvent(ChangeEvent.insertOf(ns, doc), ctx.writer.dialect.objectKey) as RowEvent,
      );
      const lastId = bsonId(docs.at(-1)!);
      const result = await ctx.target(() => {
        // The checkpoint written with these rows names their last _id.
        state.lastId = lastId;
        return ctx.writer.write(foldBatch(rows), ctx.checkpoint);
      }, signal);
      ctx.stats.snapshotDocs += docs.length;
      ctx.metrics.snapshotCopied.inc({ namespace }, docs.length);
      ctx.countDeadLetters(result);
      ctx.garbage.done(next.bytes);
    }
  } finally {
    // Closes the cursor once the read in flight settles, without waiting for it: after a fatal
    // error that read may be retrying a MongoDB outage.
    void (pending ?? Promise.resolve())
      .catch(() => undefined)
      .then(() => (reader as SnapshotReader | null)?.close())
      .catch(() => undefined);
  }
}
