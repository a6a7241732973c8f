// Prometheus metrics and the health endpoint of a running relay (`--metrics-port`). One registry
// per relay, so several relays in one process (tests) never mix their numbers.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayStats } from './stats.js';

export class RelayMetrics {
  readonly registry = new Registry();
  readonly eventsRead = new Counter({
    name: 'relay_events_read_total',
    help: 'Change events read from MongoDB',
    labelNames: ['operation', 'namespace'],
    registers: [this.registry],
  });
  readonly eventsWritten = new Counter({
    name: 'relay_events_written_total',
    help: 'Change events written to the target (with their checkpoint)',
    labelNames: ['operation', 'namespace'],
    registers: [this.registry],
  });
  readonly batches = new Counter({
    name: 'relay_batches_total',
    help: 'Batches written',
    registers: [this.registry],
  });
  readonly batchSeconds = new Histogram({
    name: 'relay_batch_write_seconds',
    help: 'Time to write one batch and its checkpoint',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  // A histogram, not a summary: one bucket increment per event (a summary's t-digest cost 5% of
  // the relay's CPU in the backlog benchmark). Quantiles: histogram_quantile() in Prometheus.
  readonly eventLatency = new Histogram({
    name: 'relay_event_latency_seconds',
    help: "End-to-end latency: commit time of an event's batch minus the event's wallTime",
    buckets: [
      0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 30,
    ],
    registers: [this.registry],
  });
  readonly eventLatencyMax = new Gauge({
    name: 'relay_event_latency_max_seconds',
    help: 'Largest end-to-end latency seen since start',
    registers: [this.registry],
  });
  private latencyMax = 0;

  /** Records the latency of each event of a batch committed at `committedMs`. */
  observeLatency(wallTimesMs: number[], committedMs: number): void {
    for (const wallTime of wallTimesMs) {
      const seconds = Math.max(0, (committedMs - wallTime) / 1000);
      this.eventLatency.observe(seconds);
      if (seconds > this.latencyMax) {
        this.latencyMax = seconds;
        this.eventLatencyMax.set(seconds);
      }
    }
  }

  readonly snapshotCopied = new Counter({
    name: 'relay_snapshot_documents_copied_total',
    help: 'Documents copied by the initial snapshot',
    labelNames: ['namespace'],
    registers: [this.registry],
  });
  readonly snapshotEstimated = new Gauge({
    name: 'relay_snapshot_documents_estimated',
    help: 'Estimated documents to copy per collection (MongoDB estimatedDocumentCount)',
    labelNames: ['namespace'],
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'relay_dead_letters_total',
    help: 'Rows written to the dead-letter table',
    labelNames: ['namespace'],
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'relay_retries_total',
    help: 'Retries after transient faults',
    labelNames: ['side'],
    registers: [this.registry],
  });
  readonly outages = new Counter({
    name: 'relay_outages_total',
    help: 'Outages (a run of failed tries) per side',
    labelNames: ['side'],
    registers: [this.registry],
  });
  readonly mongoReconnects = new Counter({
    name: 'relay_mongodb_reconnects_total',
    help: 'Times the MongoDB client was connected anew after 10 s of failed operations',
    registers: [this.registry],
  });
  readonly outageSeconds = new Counter({
    name: 'relay_outage_seconds_total',
    help: 'Time spent in outages per side',
    labelNames: ['side'],
    registers: [this.registry],
  });

  constructor(stats: RelayStats) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'relay_lag_seconds',
      help: 'Now minus the source time of the last event written (stage=written) or read (stage=read); 0 when caught up',
      labelNames: ['stage'],
      registers: [this.registry],
      collect() {
        this.set({ stage: 'written' }, stats.lagSeconds() ?? Number.NaN);
        this.set({ stage: 'read' }, stats.readLagSeconds() ?? Number.NaN);
      },
    });
    new Gauge({
      name: 'relay_checkpoint_age_seconds',
      help: 'Seconds since the checkpoint was last stored',
      registers: [this.registry],
      collect() {
        const at = stats.lastCheckpointMs;
        this.set(at === null ? Number.NaN : (Date.now() - at) / 1000);
      },
    });
  }
}

export interface Health {
  ok: boolean;
  [detail: string]: unknown;
}

/** Serves /metrics and /healthz on `port` (0: any free port); resolves with the bound port. */
export async function serveMetrics(
  metrics: RelayMetrics,
  health: () => Promise<Health>,
  port: number,
  host = '0.0.0.0',
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = req.url?.split('?')[0];
    if (url === '/metrics') {
      metrics.registry
        .metrics()
        .then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        })
        .catch((error: Error) => {
          res.writeHead(500).end(error.message);
        });
    } else if (url === '/healthz') {
      health()
        .then((state) => {
          res.writeHead(state.ok ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify(state));
        })
        .catch((error: Error) => {
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ok: false, reason: error.message }));
        });
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end('not found: try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
