// End-to-end latency at steady load: db-workload at a fixed rate while the relay runs. Each event's
// latency is the commit time of its batch minus its wallTime, measured by the relay itself
// (the relay_event_latency_seconds histogram: p50/p95/p99 interpolated in its buckets, and the
// exact maximum).
import {
  emit,
  log,
  machine,
  quick,
  round,
  workload,
  startHarness,
  startRelay,
  startTarget,
  total,
  waitUntil,
} from './lib.js';

/**
 * The q-quantile of a Prometheus histogram, interpolated linearly inside its bucket, as
 * histogram_quantile() does (so the figure is as fine as the buckets: 25 ms steps below 200 ms).
 */
function histogramQuantile(metrics: Map<string, number>, name: string, q: number): number {
  const buckets = [...metrics.entries()]
    .map(([key, count]) => ({ le: /_bucket\{le="([^"]+)"\}$/.exec(key)?.[1], key, count }))
    .filter((b) => b.key.startsWith(`${name}_bucket`) && b.le !== undefined)
    .map((b) => ({ le: b.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(b.le), count: b.count }))
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const bucket of buckets) {
    if (bucket.count >= rank) {
      if (!Number.isFinite(bucket.le)) return lower;
      return lower + ((bucket.le - lower) * (rank - below)) / Math.max(1, bucket.count - below);
    }
    lower = bucket.le;
    below = bucket.count;
  }
  return Number.NaN;
}

const rate = Number(process.env.BENCH_RATE ?? 1000);
const seconds = Number(process.env.BENCH_SECONDS ?? (quick ? 10 : 30));
const database = 'bench';

async function main(): Promise<void> {
  log(`latency: ${rate} ops/s for ${seconds}s on ${machine()}`);
  const harness = await startHarness();
  const target = await startTarget();
  try {
    await workload(harness, database, 'ticker', 'ticker', '--init', '--ops', '1', '--rate', '0');
    const relay = await startRelay([
      '--mongodb-url',
      harness.url,
      '--database',
      database,
      '--collection',
      'ticker',
      '--target-url',
      target.url,
      '--schema',
      target.schema,
    ]);
    await waitUntil(
      async () => total(await relay.metrics(), 'relay_snapshot_documents_copied_total') >= 20_000,
      'snapshot',
      120_000,
    );
    await waitUntil(
      async () => (await relay.metrics()).get('relay_lag_seconds{stage="written"}') === 0,
      'caught up',
      60_000,
    );
    const before = total(await relay.metrics(), 'relay_event_latency_seconds_count');
    const run = await workload(
      harness,
      database,
      'ticker',
      'ticker',
      '--duration',
      `${seconds}s`,
      '--rate',
      String(rate),
      '--concurrency',
      '4',
    );
    log(run.summary);
    const operations = run.operations;
    await waitUntil(
      async () =>
        total(await relay.metrics(), 'relay_event_latency_seconds_count') - before >= operations,
      'all events written',
      120_000,
    );
    const metrics = await relay.metrics();
    const quantile = (q: number) =>
      histogramQuantile(metrics, 'relay_event_latency_seconds', q) * 1000;
    const result = {
      bench: 'latency',
      ops_per_s: rate,
      seconds,
      events: operations,
      p50_ms: round(quantile(0.5)),
      p95_ms: round(quantile(0.95)),
      p99_ms: round(quantile(0.99)),
      max_ms: round((metrics.get('relay_event_latency_max_seconds') ?? Number.NaN) * 1000),
      peak_rss_mb: round(relay.peakRssMb(), 0),
    };
    await relay.stop();
    log(
      `latency p50 ${result.p50_ms} ms, p95 ${result.p95_ms} ms, p99 ${result.p99_ms} ms, max ${result.max_ms} ms`,
    );
    emit(result);
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
