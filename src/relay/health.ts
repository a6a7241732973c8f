// The relay's health for /healthz: outages of either side (while they are retried), whether the
// change stream is open, and whether the target answers.
import { sql } from 'kysely';
import type { MongoClient, TopologyDescription } from 'mongodb';
import { errorMessage } from '../errors.js';
import type { Health, RelayMetrics } from '../metrics.js';
import type { RelayStats } from '../stats.js';
import type { AnyDb } from '../target/writer.js';

export type Side = 'target' | 'mongodb';

/** Servers that take the relay's reads: a primary (replica set), a mongos or a load balancer. */
const SERVES_READS = new Set(['RSPrimary', 'Mongos', 'LoadBalancer']);

function servesReads(topology: TopologyDescription): boolean {
  return [...topology.servers.values()].some((server) => SERVES_READS.has(server.type));
}

export class RelayHealth {
  /** What the relay is doing now: starting, snapshot, streaming. */
  phase = 'starting';
  streamOpen = false;
  /** Sides in an outage now (retrying), with when it started. */
  private readonly outages = new Map<Side, number>();
  /** Since when the driver has known no server to read from; null while it knows one. */
  private unreachableSince: number | null = null;

  /**
   * Follows the driver's view of the deployment as well: for up to two server selection
   * timeouts (20 s) after MongoDB goes away the driver resumes the change stream by itself and
   * the relay sees no error, but its monitor knows at once that no primary answers.
   */
  constructor(
    private readonly metrics: RelayMetrics,
    private readonly stats: RelayStats,
    private readonly db: AnyDb,
    client: MongoClient,
  ) {
    client.on('topologyDescriptionChanged', ({ newDescription }) => {
      if (servesReads(newDescription)) this.unreachableSince = null;
      else this.unreachableSince ??= Date.now();
    });
  }

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
   * MongoDB is not in an outage and has a server to read from, and the target answers a query
   * within two seconds.
   */
  async check(): Promise<Health> {
    const detail = { phase: this.phase, lagSeconds: this.stats.lagSeconds() };
    const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(1);
    for (const [side, since] of this.outages) {
      return { ok: false, ...detail, reason: `${side} unavailable for ${seconds(since)}s` };
    }
    if (this.unreachableSince !== null) {
      return {
        ok: false,
        ...detail,
        reason: `mongodb unreachable for ${seconds(this.unreachableSince)}s: no primary answers (the driver is reconnecting)`,
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
