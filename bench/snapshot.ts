// Snapshot throughput: N documents copied into an empty table (--snapshot only), against the
// target's own ceiling for the same rows; the relay's CPU time per document, and the source's own
// pace (the same documents read in _id order by a driver client that does nothing with them: it
// takes their bytes, as the relay reads them, without decoding).
import { MongoClient } from 'mongodb';
import {
  catchUp,
  ceiling,
  emit,
  log,
  machine,
  quick,
  round,
  verifyTable,
  workload,
  startHarness,
  startTarget,
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
    const relay = await catchUp(
      harness,
      [
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
      ],
      documents,
      'relay_snapshot_documents_copied_total',
    );
    const seconds = relay.seconds;
    const peakRss = relay.peakRssMb;
    const rows = Number(
      (
        await target.query<{ n: string }>(`SELECT count(*) AS n FROM "${target.schema}"."quotes"`)
      )[0]!.n,
    );
    const rate = rows / seconds;
    log(
      `snapshot copied ${rows} documents in ${seconds.toFixed(1)}s: ${rate.toFixed(0)} docs/s, peak RSS ${peakRss.toFixed(0)} MB`,
    );
    log(
      `relay CPU ${relay.relayCpuUsPerEvent.toFixed(1)} µs and harness CPU ${relay.harnessCpuUsPerEvent.toFixed(1)} µs per document`,
    );
    log((await verifyTable(harness, target, database, 'quotes')).trim());

    const probe = new MongoClient(harness.url);
    await probe.connect();
    const sourceStart = process.hrtime.bigint();
    let read = 0;
    for await (const _doc of probe
      .db(database)
      .collection('quotes')
      .find({}, { sort: { _id: 1 }, batchSize: 1000, raw: true }))
      read++;
    const sourceRate = read / (Number(process.hrtime.bigint() - sourceStart) / 1e9);
    await probe.close();
    log(
      `source alone (a driver client reading the collection's bytes, as the relay does): ${sourceRate.toFixed(0)} docs/s`,
    );
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
      relay_cpu_us_per_event: round(relay.relayCpuUsPerEvent),
      harness_cpu_us_per_event: round(relay.harnessCpuUsPerEvent),
      source_events_per_s: round(sourceRate, 0),
      ratio_source_to_relay: round(sourceRate / rate, 1),
      peak_rss_mb: round(peakRss, 0),
    });
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
