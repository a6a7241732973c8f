// The change stream: batches read one ahead of the batch being written, both within
// --batch-bytes (a slow target slows reading instead of growing a queue), each converted, folded, written with its checkpoint.
// A MongoDB fault reopens the stream after the last batch read.
import type { ChangeEvent, Namespace } from '../convert/change.js';
import { convertEvent, type ControlEvent, type RowEvent } from '../convert/event.js';
import { foldBatch } from '../convert/fold.js';
import { errorMessage } from '../errors.js';
import { ChangeSource, type SourceBatch, type StreamPosition } from '../mongo/source.js';
import type { Checkpoint } from '../target/writer.js';
import { readAhead, readAheadBytes, unlessStopped, type RelayContext } from './context.js';
import { applyControl } from './control.js';

/** Streams from `position` until `signal` aborts (after the batch in flight) or a fatal error. */
export async function streamChanges(
  ctx: RelayContext,
  position: StreamPosition,
  signal: AbortSignal,
): Promise<void> {
  const source = new ChangeSource(ctx.client, ctx.options);
  ctx.health.phase = 'streaming';
  source.open(position);
  /** Position after the last batch read: where a stream reopened after a fault continues. */
  let lastReadPosition: StreamPosition | null = null;
  let reopen = false;
  /** The client's connection the stream was opened on; connecting anew closed it. */
  let openedOn = ctx.mongoConnection;
  const read = (maxBytes: number) =>
    ctx.mongo(async () => {
      if (reopen || openedOn !== ctx.mongoConnection) {
        await source.close();
        source.open(lastReadPosition ?? position);
        reopen = false;
        openedOn = ctx.mongoConnection;
      }
      try {
        const batch = await source.next(maxBytes);
        ctx.health.streamOpen = true;
        lastReadPosition = batch.position ?? lastReadPosition;
        return batch;
      } catch (error) {
        ctx.log.debug(`reading the change stream failed: ${errorMessage(error)}`);
        ctx.health.streamOpen = false;
        reopen = true;
        throw error;
      }
    }, signal);
  let pending: Promise<SourceBatch> | null = null;
  try {
    while (true) {
      pending ??= readAhead(read(readAheadBytes(ctx.options.batchBytes, 0)));
      const batch = await unlessStopped(pending, signal);
      pending = null;
      if (!batch) break;
      // The next batch is read while this one is written, in the room this one leaves.
      const room = readAheadBytes(ctx.options.batchBytes, batch.bytes);
      if (room > 0 && !signal.aborted) pending = readAhead(read(room));
      await applyBatch(ctx, batch, signal);
      ctx.garbage.done(batch.bytes);
      // Stopped during the copy of a collection a rename replaced: the next start resumes it.
      if (ctx.checkpoint.snapshot || signal.aborted) break;
    }
  } finally {
    await pending?.catch(() => undefined);
    ctx.health.streamOpen = false;
    await source.close();
  }
}

/** Writes one batch and its checkpoint (after a control event's effect, when it ends the batch). */
async function applyBatch(
  ctx: RelayContext,
  batch: SourceBatch,
  signal: AbortSignal,
): Promise<void> {
  const { stats, metrics, writer } = ctx;
  const { events, position } = batch;
  stats.recordRead(events);
  countByLabels(events, (labels, n) => metrics.eventsRead.inc(labels, n));
  const relayed = events.filter((e) => !ctx.leavesOut(e));
  if (relayed.length === 0) {
    if (events.length === 0) stats.caughtUp = true;
    const idleFor = Date.now() - (stats.lastCheckpointMs ?? 0);
    if (position && idleFor >= ctx.options.idleCheckpointMs) {
      ctx.checkpoint = { ...ctx.checkpoint, position };
      await ctx.saveCheckpoint(signal);
    }
    return;
  }
  const converted = relayed.map((e) => convertEvent(e, writer.dialect.objectKey));
  const rows = converted.filter((c): c is RowEvent => c.type === 'row');
  const control = converted.find((c): c is ControlEvent => c.type === 'control');
  const lastTime = relayed.at(-1)!.timeMs;
  const next: Checkpoint = {
    position: position ?? ctx.checkpoint.position,
    snapshot: null,
    eventTime: lastTime === null ? ctx.checkpoint.eventTime : new Date(lastTime),
  };
  const started = process.hrtime.bigint();
  if (rows.length > 0) {
    const result = await ctx.target(
      () => writer.write(foldBatch(rows), control ? null : next),
      signal,
    );
    ctx.countDeadLetters(result);
    for (const collection of new Set(rows.map((r) => r.collection))) ctx.follow(collection);
  }
  ctx.checkpoint = next;
  if (control) {
    await applyControl(ctx, control, signal);
    if (!ctx.checkpoint.snapshot) await ctx.saveCheckpoint(signal);
  } else {
    stats.lastCheckpointMs = Date.now();
  }
  metrics.batchSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
  const committed = Date.now();
  const wallTimes: number[] = [];
  for (const event of relayed) if (event.wallTimeMs !== null) wallTimes.push(event.wallTimeMs);
  metrics.observeLatency(wallTimes, committed);
  metrics.batches.inc();
  countByLabels(relayed, (labels, n) => metrics.eventsWritten.inc(labels, n));
  stats.recordWritten(relayed);
}

/**
 * Counts events per (operation, namespace), so counters move once per label set and batch.
 * Events of one namespace mostly share its object (ChangeEvent): counted by it, the namespace's
 * name is spelt once per batch, not once per event.
 */
function countByLabels(
  events: readonly ChangeEvent[],
  add: (labels: { operation: string; namespace: string }, n: number) => void,
): void {
  const counts = new Map<Namespace | undefined, Map<string, number>>();
  for (const event of events) {
    let byOperation = counts.get(event.ns);
    if (!byOperation) counts.set(event.ns, (byOperation = new Map()));
    byOperation.set(event.operationType, (byOperation.get(event.operationType) ?? 0) + 1);
  }
  for (const [ns, byOperation] of counts) {
    const namespace = ns?.coll ? `${ns.db}.${ns.coll}` : (ns?.db ?? '');
    for (const [operation, n] of byOperation) add({ operation, namespace }, n);
  }
}
