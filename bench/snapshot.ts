// Snapshot throughput: N documents copied into an empty table (--snapshot only), against the
// target's own ceiling for the same rows.
import {
  ceiling,
  emit,
  log,
  machine,
  quick,
  round,
  verifyTable,
  workload,
  startHarness,
  startRelay,
  startTarget,
  total,
  waitUntil,
} from './lib.js';

const documents = Number(process.env.BENCH_DOCS ?? (quick ? 20_000 : 200_000));
const database = 'bench';

async function main(): Promise<void> {
  log(`snapshot: ${documents} documents on ${machine()}`);
  const harness = await startHarness();
  const target = await startTarget();
  try {
    // ticker --init writes 20 000 quotes; more come from inserts (rate 0, mix all inserts).
    const loadedRun = await workload(
      harness,
      database,
      'quotes',
      'ticker',
      '--init',
      '--ops',
      String(Math.max(1, documents - 20_000)),
      '--mix',
      'insert=1',
      '--rate',
      '0',
      '--concurrency',
      '4',
    );
    log(loadedRun.summary);
    const started = process.hrtime.bigint();
    const relay = await startRelay([
      '--mongodb-url',
      harness.url,
      '--database',
      database,
      '--collection',
      'quotes',
      '--target-url',
      target.url,
      '--schema',
      target.schema,
      '--snapshot',
      'only',
    ]);
    let copied = 0;
    await waitUntil(
      async () => {
        if (relay.child.exitCode !== null) return true;
        copied =
          total(
            await relay.metrics().catch(() => new Map()),
            'relay_snapshot_documents_copied_total',
          ) || copied;
        return false;
      },
      'snapshot',
      30 * 60_000,
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const peakRss = relay.peakRssMb();
    await relay.stop();
    const rows = Number(
      (
        await target.query<{ n: string }>(`SELECT count(*) AS n FROM "${target.schema}"."quotes"`)
      )[0]!.n,
    );
    const rate = rows / seconds;
    log(
      `snapshot copied ${rows} documents in ${seconds.toFixed(1)}s: ${rate.toFixed(0)} docs/s, peak RSS ${peakRss.toFixed(0)} MB`,
    );
    log((await verifyTable(harness, target, database, 'quotes')).trim());
    const limit = await ceiling(target, ['quotes']);
    const ceilingRate = limit.rows / limit.seconds;
    log(
      `ceiling: ${limit.rows} rows in ${limit.seconds.toFixed(1)}s: ${ceilingRate.toFixed(0)} rows/s`,
    );
    emit({
      bench: 'snapshot',
      documents: rows,
      docs_per_s: round(rate, 0),
      seconds: round(seconds),
      ceiling_rows_per_s: round(ceilingRate, 0),
      ratio_to_ceiling: round(rate / ceilingRate, 2),
      peak_rss_mb: round(peakRss, 0),
    });
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
