// End-to-end latency at steady load: db-workload at a fixed rate while the relay runs. Each event's
// latency is the commit time of its batch minus its wallTime, measured by the relay itself
// (relay_event_latency_seconds: p50/p95/p99 over the run, and the maximum).
import {
  emit,
  log,
  machine,
  quick,
  round,
  runRelay,
  startHarness,
  startRelay,
  startTarget,
  total,
  waitUntil,
} from './lib.js';

const rate = Number(process.env.BENCH_RATE ?? 1000);
const seconds = Number(process.env.BENCH_SECONDS ?? (quick ? 10 : 30));
const database = 'bench';

async function main(): Promise<void> {
  log(`latency: ${rate} ops/s for ${seconds}s on ${machine()}`);
  const harness = await startHarness();
  const target = await startTarget();
  try {
    await runRelay([
      'db-workload',
      '--mongodb-url',
      harness.url,
      '--database',
      database,
      '--collection',
      'ticker',
      '--scenario',
      'ticker',
      '--init',
      '--ops',
      '1',
      '--rate',
      '0',
    ]);
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
    const out = await runRelay([
      'db-workload',
      '--mongodb-url',
      harness.url,
      '--database',
      database,
      '--collection',
      'ticker',
      '--scenario',
      'ticker',
      '--duration',
      `${seconds}s`,
      '--rate',
      String(rate),
      '--concurrency',
      '4',
    ]);
    log(out.trim().split('\n').at(-1)!);
    const operations = Number(/(\d+) operations/.exec(out)?.[1] ?? 0);
    await waitUntil(
      async () =>
        total(await relay.metrics(), 'relay_event_latency_seconds_count') - before >= operations,
      'all events written',
      120_000,
    );
    const metrics = await relay.metrics();
    const quantile = (q: string) =>
      (metrics.get(`relay_event_latency_seconds{quantile="${q}"}`) ?? Number.NaN) * 1000;
    const result = {
      bench: 'latency',
      ops_per_s: rate,
      seconds,
      events: operations,
      p50_ms: round(quantile('0.5')),
      p95_ms: round(quantile('0.95')),
      p99_ms: round(quantile('0.99')),
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
