// The relay's health for /healthz: outages of either side (while they are retried), whether the
// change stream is open, and whether the target answers.
import { sql } from 'kysely';
import { errorMessage } from '../errors.js';
import type { Health, RelayMetrics } from '../metrics.js';
import type { RelayStats } from '../stats.js';
import type { AnyDb } from '../target/writer.js';

export type Side = 'target' | 'mongodb';

export class RelayHealth {
  /** What the relay is doing now: starting, snapshot, streaming. */
  phase = 'starting';
  streamOpen = false;
  /** Sides in an outage now (retrying), with when it started. */
  private readonly outages = new Map<Side, number>();

  constructor(
    private readonly metrics: RelayMetrics,
    private readonly stats: RelayStats,
    private readonly db: AnyDb,
  ) {}

  /** Retry hooks that keep the outage state and metrics of one side. */
  retrying(side: Side) {
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

  /**
   * Healthy while the change stream is open (or the initial snapshot runs, before it opens),
   * MongoDB is not in an outage, and the target answers a query within two seconds.
   */
  async check(): Promise<Health> {
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
      await Promise.race([sql`SELECT 1`.execute(this.db), timeout]);
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
}
