// Memory with large documents: 300 × 2 MB and 20 × 15 MB documents (reports, images, logs stored
// inline), each set once streamed from a backlog (written while the relay is stopped) and once
// copied by the snapshot, with default settings. The relay's peak resident memory is sampled
// (VmHWM) in every run and must stay within 256 MB; `relay verify` then checks that nothing was
// lost, its own peak memory sampled too. On PostgreSQL, or with --cratedb on the CrateDB harness
// (its own process), into OBJECT(IGNORED) tables: CrateDB indexes at most 32766 bytes of a
// string, so the relay dead-letters longer strings in a dynamic object (README: Troubleshooting).
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import {
  emit,
  harnessRssMb,
  log,
  machine,
  quick,
  round,
  runRelaySampled,
  startHarness,
  startRelay,
  startTarget,
  total,
  waitUntil,
  type Harness,
  type Target,
} from './lib.js';

const MB = 1_000_000;
const CASES = quick
  ? [
      { documents: 60, bytes: 2 * MB },
      { documents: 5, bytes: 15 * MB },
    ]
  : [
      { documents: 300, bytes: 2 * MB },
      { documents: 20, bytes: 15 * MB },
    ];
const database = 'bench_large';
const kind = process.argv.includes('--cratedb') ? 'cratedb' : 'postgres';

/** A report with its content inline: a few fields and one large base64 body. */
function document(id: number, bytes: number) {
  return {
    _id: id,
    title: `report ${id}`,
    created: new Date(),
    tags: ['inline', 'large', `n${id % 7}`],
    body: randomBytes(Math.floor((bytes * 3) / 4)).toString('base64'),
  };
}

/** Inserts the documents in writes of about 40 MB (each within MongoDB's 48 MB message). */
async function load(harness: Harness, collection: string, documents: number, bytes: number) {
  const client = new MongoClient(harness.url);
  try {
    const coll = client.db(database).collection(collection);
    const perWrite = Math.max(1, Math.floor((40 * MB) / bytes));
    for (let i = 0; i < documents; i += perWrite) {
      const count = Math.min(perWrite, documents - i);
      await coll.insertMany(
        Array.from({ length: count }, (_, k) => document(i + k, bytes)) as never,
      );
    }
  } finally {
    await client.close();
  }
}

function relayArgs(harness: Harness, target: Target, collection: string, ...extra: string[]) {
  return [
    ...['--mongodb-url', harness.url, '--database', database, '--collection', collection],
    ...['--target-url', target.url, '--schema', target.schema, '--stream-id', collection],
    ...(target.dialect === 'cratedb' ? ['--object-policy', 'ignored'] : []),
    ...extra,
  ];
}

/** `relay verify` of the collection: documents missing, extra or different, and its memory. */
async function verify(harness: Harness, target: Target, collection: string) {
  const started = Date.now();
  const run = await runRelaySampled(
    [
      'verify',
      ...['--mongodb-url', harness.url, '--database', database, '--collection', collection],
      ...['--target-url', target.url, '--schema', target.schema, '--json'],
    ],
    [1],
  );
  const report = JSON.parse(run.output.trim().split('\n').at(-1)!) as Record<
    'missing' | 'extra' | 'different',
    { count: number }
  >;
  return {
    lost: report.missing.count + report.extra.count + report.different.count,
    seconds: (Date.now() - started) / 1000,
    peak: run.peakRssMb,
  };
}

interface Run {
  mode: 'stream' | 'snapshot';
  documents: number;
  document_mb: number;
  seconds: number;
  peak_rss_mb: number;
  lost: number;
  verify_seconds: number;
  verify_peak_rss_mb: number;
}

/** The backlog: position noted by a first run, documents written while stopped, then caught up. */
async function stream(harness: Harness, target: Target, documents: number, bytes: number) {
  const collection = `stream_${documents}x${bytes / MB}mb`;
  const args = relayArgs(harness, target, collection, '--snapshot', 'never');
  const first = await startRelay(args);
  await waitUntil(
    async () => (await first.metrics()).has('relay_checkpoint_age_seconds'),
    'checkpoint',
    60_000,
  );
  await first.stop();
  await load(harness, collection, documents, bytes);
  const started = Date.now();
  const relay = await startRelay(args);
  await waitUntil(
    async () => total(await relay.metrics(), 'relay_events_written_total') >= documents,
    'catch-up',
    30 * 60_000,
  );
  const seconds = (Date.now() - started) / 1000;
  const peak = relay.peakRssMb();
  await relay.stop();
  return { collection, seconds, peak };
}

/** The snapshot: documents written first, then `--snapshot only` copies them and exits. */
async function snapshot(harness: Harness, target: Target, documents: number, bytes: number) {
  const collection = `snapshot_${documents}x${bytes / MB}mb`;
  await load(harness, collection, documents, bytes);
  const started = Date.now();
  const relay = await startRelay(relayArgs(harness, target, collection, '--snapshot', 'only'));
  if (relay.child.exitCode === null) await new Promise((r) => relay.child.once('exit', r));
  const seconds = (Date.now() - started) / 1000;
  const peak = relay.peakRssMb();
  await relay.stop();
  if (relay.child.exitCode !== 0) throw new Error(`snapshot of ${collection} failed`);
  return { collection, seconds, peak };
}

async function main(): Promise<void> {
  log(
    `large on ${kind}: ${CASES.map((c) => `${c.documents} × ${c.bytes / MB} MB`).join(', ')} on ${machine()}`,
  );
  const harness = await startHarness();
  const target = await startTarget(kind);
  const runs: Run[] = [];
  try {
    for (const { documents, bytes } of CASES) {
      for (const mode of ['stream', 'snapshot'] as const) {
        const run = await (mode === 'stream' ? stream : snapshot)(
          harness,
          target,
          documents,
          bytes,
        );
        const checked = await verify(harness, target, run.collection);
        log(
          `${mode} of ${documents} × ${bytes / MB} MB: ${run.seconds.toFixed(1)}s, peak RSS ${run.peak.toFixed(0)} MB, lost ${checked.lost} (verify: ${checked.seconds.toFixed(1)}s, peak RSS ${checked.peak.toFixed(0)} MB)`,
        );
        runs.push({
          mode,
          documents,
          document_mb: bytes / MB,
          seconds: round(run.seconds),
          peak_rss_mb: round(run.peak, 0),
          lost: checked.lost,
          verify_seconds: round(checked.seconds),
          verify_peak_rss_mb: round(checked.peak, 0),
        });
      }
    }
    emit({
      bench: kind === 'cratedb' ? 'large-cratedb' : 'large',
      target: process.env.BENCH_TARGET_URL
        ? target.dialect
        : kind === 'cratedb'
          ? 'CrateDB harness'
          : 'embedded PostgreSQL',
      object_policy: target.dialect === 'cratedb' ? 'ignored' : null,
      batch_bytes: 'default',
      peak_rss_mb: Math.max(...runs.map((r) => r.peak_rss_mb)),
      verify_peak_rss_mb: Math.max(...runs.map((r) => r.verify_peak_rss_mb)),
      lost: runs.reduce((n, r) => n + r.lost, 0),
      harness_rss_mb: round(harnessRssMb(harness), 0),
      runs,
    });
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
