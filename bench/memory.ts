// Memory under backlog: N events waiting and a target slowed on purpose (every round trip held
// back by a proxy). The relay reads one batch ahead at most, so its resident memory must stay flat
// however long the backlog; reported as the peak and as RSS along the way, and verify checks that
// nothing was lost.
import {
  emit,
  log,
  machine,
  quick,
  round,
  verifyTable,
  workload,
  slowProxy,
  startHarness,
  startRelay,
  startTarget,
  total,
  waitUntil,
} from './lib.js';

const events = Number(process.env.BENCH_EVENTS ?? (quick ? 100_000 : 1_000_000));
const delayMs = Number(process.env.BENCH_DELAY_MS ?? 20);
const database = 'bench';

async function main(): Promise<void> {
  log(`memory: ${events} events, target delayed ${delayMs} ms per round trip, on ${machine()}`);
  const harness = await startHarness();
  const target = await startTarget();
  const proxy = await slowProxy(target.url, delayMs);
  try {
    const args = [
      '--mongodb-url',
      harness.url,
      '--database',
      database,
      '--collection',
      'ticker',
      '--target-url',
      proxy.url,
      '--schema',
      target.schema,
      '--snapshot',
      'never',
      '--stream-id',
      'bench-memory',
    ];
    // Note the position, then build the backlog while the relay is stopped.
    const first = await startRelay(args);
    await waitUntil(
      async () => (await first.metrics()).has('relay_checkpoint_age_seconds'),
      'checkpoint',
      30_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await first.stop();
    const started = Date.now();
    const run = await workload(
      harness,
      database,
      'ticker',
      'ticker',
      '--init',
      '--ops',
      String(events - 20_000),
      '--rate',
      '0',
      '--concurrency',
      '4',
    );
    log(`${run.summary} (${((Date.now() - started) / 1000).toFixed(0)}s)`);
    const relay = await startRelay(args);
    const progress: { fraction: number; rssMb: number }[] = [];
    let next = 0.1;
    const relayStart = Date.now();
    await waitUntil(
      async () => {
        const written = total(await relay.metrics(), 'relay_events_written_total');
        const rss = relay.rssSamples.at(-1) ?? 0;
        while (written >= next * events && next <= 1) {
          progress.push({ fraction: round(next, 1), rssMb: round(rss, 0) });
          next += 0.1;
        }
        return written >= events;
      },
      'catch-up',
      60 * 60_000,
    );
    const seconds = (Date.now() - relayStart) / 1000;
    const peak = relay.peakRssMb();
    await relay.stop();
    const report = JSON.parse(
      (await verifyTable(harness, target, database, 'ticker', '--json')).trim().split('\n').at(-1)!,
    ) as { missing: { count: number }; extra: { count: number }; different: { count: number } };
    const lost = report.missing.count + report.extra.count + report.different.count;
    log(
      `caught up with ${events} events in ${seconds.toFixed(0)}s; peak RSS ${peak.toFixed(0)} MB; RSS along the way ${progress.map((p) => `${p.fraction * 100}%: ${p.rssMb}`).join(', ')}; lost ${lost}`,
    );
    emit({
      bench: 'memory',
      events,
      target_delay_ms: delayMs,
      seconds: round(seconds),
      peak_rss_mb: round(peak, 0),
      rss_mb_by_progress: progress.map((p) => p.rssMb),
      lost,
    });
  } finally {
    await proxy.close();
    await target.stop();
    await harness.stop();
  }
}

await main();
