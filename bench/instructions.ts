// Instructions the relay executes per event while catching up a backlog, counted by valgrind's
// callgrind: unlike CPU time, the count does not move with the load of a shared machine, so two
// builds can be compared on a busy day. A tool for A/B trials, not one of `npm run bench`'s
// figures: `npx tsx bench/instructions.ts [--events N] [--mode stream|snapshot] [RELAY_BIN…]`
// runs each `bin/relay.js` given (default: this checkout's, `npm run build` first) over the
// same backlog, one after another, and prints one JSON line per run. Needs valgrind.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import {
  cdcRelayArgs,
  createImageCollections,
  emit,
  log,
  startHarness,
  startRelay,
  scrapeMetrics,
  startTarget,
  total,
  waitUntil,
  workload,
} from './lib.js';
import { postgresDialect } from '../src/target/postgres/dialect.js';
import { freePort } from '../test/support/postgres.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    events: { type: 'string', default: '10000' },
    mode: { type: 'string', default: 'stream' },
  },
});
const operations = Number(values.events);
const mode = values.mode === 'snapshot' ? 'snapshot' : 'stream';
const relays = positionals.length ? positionals.map((p) => path.resolve(p)) : ['bin/relay.js'];
const database = 'ab';

/**
 * Runs `relayBin cdc-relay <args>` under callgrind and counts what it executes from its first
 * read of the checkpoint on: the checkpoint table is locked until counting is switched on, so
 * start-up (loading modules, connecting) is not counted and the backlog is not read before.
 */
async function countInstructions(
  relayBin: string,
  args: string[],
  schema: string,
  targetUrl: string,
  events: number,
): Promise<{ instructions: number; seconds: number }> {
  const out = path.join(os.tmpdir(), `relay-callgrind-${process.pid}-${Date.now()}.out`);
  const metricsPort = await freePort();
  const lock = new pg.Client({ connectionString: targetUrl });
  await lock.connect();
  await lock.query('BEGIN');
  await lock.query(`LOCK TABLE "${schema}".relay_checkpoints IN ACCESS EXCLUSIVE MODE`);
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${out}`,
      process.execPath,
      // Compiling and collecting on the main thread: background threads make the count depend
      // on how valgrind happens to schedule them (two runs of one build differed by 40%).
      '--single-threaded',
      relayBin,
      ...cdcRelayArgs(args, metricsPort),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const counter =
    mode === 'snapshot' ? 'relay_snapshot_documents_copied_total' : 'relay_events_written_total';
  const written = async () => total(await scrapeMetrics(metricsPort), counter);
  try {
    // Waiting for the lock: the relay has started and reads its checkpoint.
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`relay exited:\n${stderr}`);
        // Inside a transaction the activity view is a snapshot unless cleared.
        await lock.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await lock.query(
          `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
        );
        return rows.length > 0;
      },
      'the relay under valgrind to read its checkpoint',
      600_000,
    );
    execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
    const started = process.hrtime.bigint();
    await lock.query('COMMIT');
    await waitUntil(
      async () => {
        if (child.exitCode !== null && mode === 'stream') {
          throw new Error(`relay exited:\n${stderr}`);
        }
        return child.exitCode !== null || (await written().catch(() => 0)) >= events;
      },
      'the relay to catch up',
      3_600_000,
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (child.exitCode === null) {
      execFileSync('callgrind_control', ['-i', 'off', String(child.pid)], { stdio: 'ignore' });
      child.kill('SIGTERM');
    }
    await exited;
    const summary = /^totals:\s+(\d+)/m.exec(fs.readFileSync(out, 'utf8'));
    if (!summary) throw new Error(`no callgrind totals in ${out}`);
    return { instructions: Number(summary[1]), seconds };
  } finally {
    child.kill('SIGKILL');
    await lock.end().catch(() => undefined);
    for (const file of fs.readdirSync(os.tmpdir())) {
      if (file.startsWith(path.basename(out))) fs.rmSync(path.join(os.tmpdir(), file));
    }
  }
}

async function main(): Promise<void> {
  const harness = await startHarness();
  const target = await startTarget();
  try {
    await createImageCollections(harness, database, ['ticker', 'accounts']);
    const common = ['--mongodb-url', harness.url, '--database', database];
    // A batch closes at --batch-size only: under valgrind reading a batch takes longer than the
    // default wait of 100 ms, and batches closed by time made the count depend on timing.
    const streamArgs = [
      ...common,
      ...['--full-document', 'whenAvailable', '--stream-id', 'ab', '--batch-wait-ms', '20000'],
    ];
    if (mode === 'stream') {
      // The checkpoint every run starts from: before the backlog.
      const relay = await startRelay([
        ...streamArgs,
        ...['--target-url', target.url, '--schema', 'public', '--snapshot', 'never'],
      ]);
      await waitUntil(
        async () =>
          (await target.query(`SELECT 1 FROM relay_checkpoints`).catch(() => [])).length > 0,
        'the first checkpoint',
        60_000,
      );
      await relay.stop();
    }
    let events = 0;
    for (const [scenario, collection] of [
      ['ticker', 'ticker'],
      ['bank', 'accounts'],
    ] as const) {
      const mix = mode === 'snapshot' ? ['--mix', 'insert=1'] : [];
      const run = await workload(
        harness,
        ...[database, collection, scenario, '--init', '--ops', String(operations / 2)],
        ...[...mix, '--rate', '0', '--concurrency', '4'],
      );
      events += run.loaded + run.operations;
      log(run.summary);
    }
    for (const [i, relayBin] of relays.entries()) {
      const schema = `ab_${i}`;
      for (const statement of postgresDialect.ddl(schema, null, 'dynamic')) {
        await target.query(statement);
      }
      if (mode === 'stream') {
        await target.query(
          `INSERT INTO "${schema}".relay_checkpoints SELECT * FROM public.relay_checkpoints`,
        );
      }
      const args = [
        ...(mode === 'stream' ? streamArgs : [...common, '--snapshot', 'only']),
        ...['--target-url', target.url, '--schema', schema],
      ];
      log(`${relayBin}: catching up ${events} events under callgrind`);
      const { instructions, seconds } = await countInstructions(
        relayBin,
        args,
        schema,
        target.url,
        events,
      );
      emit({
        relay: relayBin,
        mode,
        events,
        instructions_per_event: Math.round(instructions / events),
        seconds_under_valgrind: Math.round(seconds),
      });
    }
  } finally {
    await target.stop();
    await harness.stop();
  }
}

await main();
