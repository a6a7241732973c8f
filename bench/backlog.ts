// Backlog throughput: N events written while the relay is stopped, then the time the relay takes
// to catch up (checked with verify), against the target's own ceiling (the same final rows
// upserted straight into a table in 1000-row statements) and the per-event baseline
// (--batch-size 1, one statement per event, as simple relays do). Also the source's own pace: the
// same events read by a driver client that does nothing with them.
import { MongoClient, Timestamp } from 'mongodb';
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
  type Harness,
  type Target,
} from './lib.js';

const events = Number(process.env.BENCH_EVENTS ?? (quick ? 20_000 : 200_000));
const baselineSeconds = quick ? 5 : 15;
const database = 'bench';

function source(harness: Harness, target: Target, schema: string, ...extra: string[]): string[] {
  return [
    '--mongodb-url',
    harness.url,
    '--database',
    database,
    '--target-url',
    target.url,
    '--schema',
    schema,
    ...extra,
  ];
}

/** Starts a relay once so its checkpoint holds the current position, then stops it. */
async function notePosition(args: string[], target: Target, streamId: string): Promise<void> {
  const relay = await startRelay(args);
  await waitUntil(
    async () =>
      (
        await target
          .query(
            `SELECT 1 FROM "${args[args.indexOf('--schema') + 1]}".relay_checkpoints WHERE stream_id = $1`,
            [streamId],
          )
          .catch(() => [])
      ).length > 0,
    `checkpoint of ${streamId}`,
    30_000,
  );
  await relay.stop();
}

async function main(): Promise<void> {
  log(`backlog: ${events} events on ${machine()}`);
  const harness = await startHarness();
  const target = await startTarget();
  const baselineSchema = `${target.schema}_base`;
  try {
    if (!process.env.BENCH_TARGET_URL)
      await target.query(`CREATE SCHEMA IF NOT EXISTS "${baselineSchema}"`);
    const relayArgs = source(
      harness,
      target,
      target.schema,
      '--snapshot',
      'never',
      '--stream-id',
      'bench-relay',
    );
    const baselineArgs = source(
      harness,
      target,
      baselineSchema,
      '--snapshot',
      'never',
      '--stream-id',
      'bench-baseline',
      '--batch-size',
      '1',
    );
    await notePosition(relayArgs, target, 'bench-relay');
    await notePosition(baselineArgs, target, 'bench-baseline');

    // Where the backlog starts, for measuring the source on its own afterwards.
    const probe = new MongoClient(harness.url);
    await probe.connect();
    const backlogStart = (await probe.db(database).command({ ping: 1 })).operationTime as Timestamp;

    // The backlog: the ticker and bank scenarios, half the operations each, starting data included.
    const started = Date.now();
    let written = 0;
    for (const [scenario, collection] of [
      ['ticker', 'ticker'],
      ['bank', 'accounts'],
    ] as const) {
      const run = await workload(
        harness,
        database,
        collection,
        scenario,
        '--init',
        '--ops',
        String(events / 2),
        '--rate',
        '0',
        '--concurrency',
        '4',
      );
      written += run.loaded + run.operations;
      log(run.summary);
    }
    log(`backlog of ${written} events written in ${((Date.now() - started) / 1000).toFixed(1)}s`);

    const relayStart = process.hrtime.bigint();
    const relay = await startRelay(relayArgs);
    await waitUntil(
      async () => total(await relay.metrics(), 'relay_events_written_total') >= written,
      'catch-up',
      30 * 60_000,
    );
    const relaySeconds = Number(process.hrtime.bigint() - relayStart) / 1e9;
    const peakRss = relay.peakRssMb();
    await relay.stop();
    const relayRate = written / relaySeconds;
    log(
      `relay caught up with ${written} events in ${relaySeconds.toFixed(1)}s: ${relayRate.toFixed(0)} events/s, peak RSS ${peakRss.toFixed(0)} MB`,
    );

    // The source's own pace: the same events read by a driver client that does nothing with them.
    const sourceStart = process.hrtime.bigint();
    const stream = probe.db(database).watch([], {
      startAtOperationTime: new Timestamp({ t: backlogStart.t, i: backlogStart.i + 1 }),
      fullDocument: 'updateLookup',
      batchSize: 1000,
      maxAwaitTimeMS: 200,
      promoteLongs: false,
    });
    let sourceEvents = 0;
    while (await stream.tryNext()) sourceEvents++;
    const sourceRate = sourceEvents / (Number(process.hrtime.bigint() - sourceStart) / 1e9);
    await stream.close();
    await probe.close();
    log(
      `source alone (a driver client reading the same backlog): ${sourceEvents} events, ${sourceRate.toFixed(0)} events/s`,
    );

    for (const collection of ['ticker', 'accounts']) {
      log((await verifyTable(harness, target, database, collection)).trim());
    }

    const limit = await ceiling(target, ['ticker', 'accounts']);
    const ceilingRate = limit.rows / limit.seconds;
    log(
      `ceiling: ${limit.rows} rows upserted in ${limit.seconds.toFixed(1)}s: ${ceilingRate.toFixed(0)} rows/s`,
    );

    const baseline = await startRelay(baselineArgs);
    const baselineFrom = total(await baseline.metrics(), 'relay_events_written_total');
    const baselineStart = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, baselineSeconds * 1000));
    const baselineEvents =
      total(await baseline.metrics(), 'relay_events_written_total') - baselineFrom;
    const baselineElapsed = Number(process.hrtime.bigint() - baselineStart) / 1e9;
    await baseline.stop();
    const baselineRate = baselineEvents / baselineElapsed;
    log(
      `baseline (--batch-size 1): ${baselineEvents} events in about ${baselineSeconds}s: ${baselineRate.toFixed(0)} events/s`,
    );

    emit({
      bench: 'backlog',
      events: written,
      relay_events_per_s: round(relayRate, 0),
      relay_seconds: round(relaySeconds),
      ceiling_rows_per_s: round(ceilingRate, 0),
      baseline_events_per_s: round(baselineRate, 0),
      ratio_to_ceiling: round(relayRate / ceilingRate, 2),
      source_events_per_s: round(sourceRate, 0),
      ratio_to_source: round(relayRate / sourceRate, 2),
      ratio_to_baseline: round(relayRate / baselineRate, 1),
      peak_rss_mb: round(peakRss, 0),
    });
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
