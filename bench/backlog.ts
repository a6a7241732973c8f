// Backlog throughput: N events written while the relay is stopped, then the time the relay takes
// to catch up (checked with verify), against the target's own ceiling (the same final rows
// upserted straight into a table in 1000-row statements) and the per-event baseline
// (--batch-size 1, one statement per event, as simple relays do). Updates carry their post-image
// (`--full-document whenAvailable` on collections with changeStreamPreAndPostImages, stored at
// write time as MongoDB does); one `updateLookup` run over the same backlog for comparison. Also
// the CPU time the relay spends per event, and the source's own pace: the same events read by the
// relay's reader alone, which does nothing with them.
import { MongoClient, Timestamp } from 'mongodb';
import { ChangeSource } from '../src/mongo/source.js';
import {
  catchUp,
  ceiling,
  createImageCollections,
  emit,
  harnessRssMb,
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

/**
 * The same backlog read by a client that does nothing with the events: the relay's own reader
 * (ChangeSource: the driver's change stream, events taken as bytes, as the relay takes them)
 * without converting or writing anything. Events/s.
 */
async function sourceAlone(
  probe: MongoClient,
  from: Timestamp,
  fullDocument: 'whenAvailable' | 'updateLookup',
): Promise<{ events: number; perSecond: number }> {
  const started = process.hrtime.bigint();
  const source = new ChangeSource(probe, {
    database,
    collections: null,
    fullDocument,
    filter: [],
    batchSize: 1000,
    batchBytes: 32 * 1024 * 1024,
    batchWaitMs: 200,
  });
  source.open({ startAtOperationTime: new Timestamp({ t: from.t, i: from.i + 1 }) });
  let events = 0;
  try {
    for (;;) {
      const batch = await source.next();
      if (batch.events.length === 0) break;
      events += batch.events.length;
    }
  } finally {
    await source.close();
  }
  const perSecond = events / (Number(process.hrtime.bigint() - started) / 1e9);
  return { events, perSecond };
}

async function main(): Promise<void> {
  log(`backlog: ${events} events on ${machine()}`);
  const harness = await startHarness();
  const target = await startTarget();
  const lookupSchema = `${target.schema}_lookup`;
  const baselineSchema = `${target.schema}_base`;
  try {
    if (!process.env.BENCH_TARGET_URL) {
      await target.query(`CREATE SCHEMA IF NOT EXISTS "${lookupSchema}"`);
      await target.query(`CREATE SCHEMA IF NOT EXISTS "${baselineSchema}"`);
    }
    const probe = new MongoClient(harness.url);
    await probe.connect();
    // Post-images are stored with each write, as MongoDB does for these collections.
    await createImageCollections(harness, database, ['ticker', 'accounts']);
    const relayArgs = source(
      harness,
      target,
      target.schema,
      '--snapshot',
      'never',
      '--stream-id',
      'bench-relay',
      '--full-document',
      'whenAvailable',
    );
    const lookupArgs = source(
      harness,
      target,
      lookupSchema,
      '--snapshot',
      'never',
      '--stream-id',
      'bench-lookup',
      '--full-document',
      'updateLookup',
    );
    const baselineArgs = source(
      harness,
      target,
      baselineSchema,
      '--snapshot',
      'never',
      '--stream-id',
      'bench-baseline',
      '--full-document',
      'whenAvailable',
      '--batch-size',
      '1',
    );
    await notePosition(relayArgs, target, 'bench-relay');
    await notePosition(lookupArgs, target, 'bench-lookup');
    await notePosition(baselineArgs, target, 'bench-baseline');

    // Where the backlog starts, for measuring the source on its own afterwards.
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

    const relay = await catchUp(harness, relayArgs, written);
    log(
      `relay (whenAvailable) caught up with ${written} events in ${relay.seconds.toFixed(1)}s: ${relay.eventsPerS.toFixed(0)} events/s, ${relay.relayCpuUsPerEvent.toFixed(1)} µs relay CPU and ${relay.harnessCpuUsPerEvent.toFixed(1)} µs harness CPU per event, peak RSS ${relay.peakRssMb.toFixed(0)} MB`,
    );
    const lookup = await catchUp(harness, lookupArgs, written);
    log(
      `relay (updateLookup) caught up in ${lookup.seconds.toFixed(1)}s: ${lookup.eventsPerS.toFixed(0)} events/s, ${lookup.relayCpuUsPerEvent.toFixed(1)} µs relay CPU and ${lookup.harnessCpuUsPerEvent.toFixed(1)} µs harness CPU per event`,
    );

    // The source's own pace: the same events read by a driver client that does nothing with them.
    const alone = await sourceAlone(probe, backlogStart, 'whenAvailable');
    const aloneLookup = await sourceAlone(probe, backlogStart, 'updateLookup');
    await probe.close();
    log(
      `source alone (the relay's reader, converting and writing nothing): ${alone.events} events, ${alone.perSecond.toFixed(0)} events/s (updateLookup: ${aloneLookup.perSecond.toFixed(0)} events/s)`,
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
      full_document: 'whenAvailable',
      relay_events_per_s: round(relay.eventsPerS, 0),
      relay_seconds: round(relay.seconds),
      relay_cpu_us_per_event: round(relay.relayCpuUsPerEvent),
      harness_cpu_us_per_event: round(relay.harnessCpuUsPerEvent),
      harness_peak_rss_mb: round(harnessRssMb(harness), 0),
      ceiling_rows_per_s: round(ceilingRate, 0),
      ratio_to_ceiling: round(relay.eventsPerS / ceilingRate, 2),
      source_events_per_s: round(alone.perSecond, 0),
      ratio_source_to_relay: round(alone.perSecond / relay.eventsPerS, 1),
      baseline_events_per_s: round(baselineRate, 0),
      ratio_to_baseline: round(relay.eventsPerS / baselineRate, 1),
      peak_rss_mb: round(relay.peakRssMb, 0),
      lookup_events_per_s: round(lookup.eventsPerS, 0),
      lookup_relay_cpu_us_per_event: round(lookup.relayCpuUsPerEvent),
      lookup_harness_cpu_us_per_event: round(lookup.harnessCpuUsPerEvent),
      lookup_source_events_per_s: round(aloneLookup.perSecond, 0),
      lookup_peak_rss_mb: round(lookup.peakRssMb, 0),
    });
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
