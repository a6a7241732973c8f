// What the relay has done, for progress lines (and metrics): counts by operation, dead letters,
// and how far behind the source the target is.
import type { ChangeEvent } from './convert/change.js';

export class RelayStats {
  readonly started = Date.now();
  eventsRead = 0;
  eventsWritten = 0;
  snapshotDocs = 0;
  deadLetters = 0;
  batches = 0;
  readonly byOperation: Record<string, number> = {};
  /** Source time (ms) of the last event written to the target. */
  lastWrittenEventMs: number | null = null;
  /** Source time (ms) of the last event read from MongoDB. */
  lastReadEventMs: number | null = null;
  /** When the checkpoint was last stored (ms). */
  lastCheckpointMs: number | null = null;
  /** The last read found no new events and everything before was written: no lag. */
  caughtUp = false;

  recordRead(events: readonly ChangeEvent[]): void {
    this.eventsRead += events.length;
    const last = events.at(-1);
    if (last) this.lastReadEventMs = last.timeMs ?? this.lastReadEventMs;
  }

  /** Seconds between now and the source time of the last event read; 0 when caught up. */
  readLagSeconds(now = Date.now()): number | null {
    if (this.caughtUp) return 0;
    return this.lastReadEventMs === null ? null : Math.max(0, (now - this.lastReadEventMs) / 1000);
  }

  recordWritten(events: readonly ChangeEvent[]): void {
    this.caughtUp = false;
    this.eventsWritten += events.length;
    this.batches++;
    for (const event of events) {
      const op = event.operationType;
      this.byOperation[op] = (this.byOperation[op] ?? 0) + 1;
    }
    const last = events.at(-1);
    if (last) this.lastWrittenEventMs = last.timeMs ?? this.lastWrittenEventMs;
  }

  /** Seconds between now and the source time of the last written event; 0 when caught up. */
  lagSeconds(now = Date.now()): number | null {
    if (this.caughtUp) return 0;
    return this.lastWrittenEventMs === null
      ? null
      : Math.max(0, (now - this.lastWrittenEventMs) / 1000);
  }
}

/** Prints a progress line every `intervalMs` until stopped. */
export function startProgress(
  stats: RelayStats,
  label: () => string,
  write: (line: string) => void,
  intervalMs: number,
): () => void {
  let lastEvents = stats.eventsWritten + stats.snapshotDocs;
  let lastAt = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const total = stats.eventsWritten + stats.snapshotDocs;
    const rate = ((total - lastEvents) * 1000) / Math.max(1, now - lastAt);
    lastEvents = total;
    lastAt = now;
    const ops = Object.entries(stats.byOperation)
      .map(([op, n]) => `${op} ${n}`)
      .join(', ');
    const lag = stats.lagSeconds(now);
    write(
      `${label()}: ${rate.toFixed(0)} events/s` +
        (stats.snapshotDocs ? `, snapshot ${stats.snapshotDocs} docs` : '') +
        `, written ${stats.eventsWritten}${ops ? ` (${ops})` : ''}` +
        `, lag ${lag === null ? '-' : `${lag.toFixed(1)}s`}, dead letters ${stats.deadLetters}`,
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
