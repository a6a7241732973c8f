// Shared pieces of the benchmarks: the harness MongoDB in its own process, a target (embedded
// PostgreSQL or BENCH_TARGET_URL), the relay as a child process with its metrics scraped and its
// memory sampled, and the results file.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import readline from 'node:readline';
import { MongoClient } from 'mongodb';
import pg from 'pg';
import type { Document } from 'bson';
import { ChangeEvent } from '../src/convert/change.js';
import { upsertOf, type RowEvent } from '../src/convert/event.js';
import { foldBatch } from '../src/convert/fold.js';
import { parseStoredJson } from '../src/convert/stored.js';
import { keepKeys } from '../src/convert/value.js';
import { connectTarget } from '../src/target/connect.js';
import { TargetWriter } from '../src/target/writer.js';
import { PostgresServer, freePort } from '../test/support/postgres.js';

export const quick = process.argv.includes('--quick');

// Whatever happens to a benchmark, none of its child processes outlives it.
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

export interface Harness {
  url: string;
  /** CPU seconds (user + system) the harness process has used so far. */
  cpuSeconds(): number;
  pid: number;
  stop(): Promise<void>;
}

/** `script` (TypeScript, run with tsx) as a child process, once it prints `ready <url>`. */
async function spawnReady(
  script: string,
  args: string[],
): Promise<{ child: ChildProcess; url: string }> {
  // BENCH_PROFILE=1: the harnesses write V8 CPU profiles to bench/out/ too (when they stop).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir=bench/out'] : [];
  const child = track(
    spawn(process.execPath, [...profile, '--import', 'tsx', script, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const match = /^ready (\S+)$/.exec(line);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { child, url };
}

/** The MongoDB harness as its own process, so its CPU is not the relay's. */
export async function startHarness(): Promise<Harness> {
  const port = await freePort();
  const { child, url } = await spawnReady('test/support/mongo/standalone.ts', [
    '--port',
    String(port),
  ]);
  return {
    url,
    pid: child.pid!,
    cpuSeconds: () => cpuSeconds(child.pid!) ?? 0,
    stop: () => stopProcess(child),
  };
}

/** Peak resident memory of the harness process so far, in MB. */
export function harnessRssMb(harness: Harness): number {
  return statusField(harness.pid, 'VmHWM') ?? 0;
}

export interface Target {
  url: string;
  schema: string;
  dialect: 'postgres' | 'cratedb';
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

/**
 * BENCH_TARGET_URL (a real CrateDB or PostgreSQL), or a fresh embedded PostgreSQL; with
 * `kind` 'cratedb' (and no BENCH_TARGET_URL), the CrateDB harness as its own process.
 */
export async function startTarget(kind: 'postgres' | 'cratedb' = 'postgres'): Promise<Target> {
  const given = process.env.BENCH_TARGET_URL;
  const harness = !given && kind === 'cratedb' ? await startCrateHarness() : null;
  const external = given ?? harness?.url;
  const server = external ? null : await PostgresServer.start();
  const url = external ?? server!.url();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const crate = /crate/i.test((await client.query('SELECT version() AS v')).rows[0].v);
  const schema = external ? `bench_${Date.now().toString(36)}` : 'public';
  return {
    url,
    schema,
    dialect: crate ? 'cratedb' : 'postgres',
    query: async (text, params = []) => (await client.query(text, params)).rows,
    stop: async () => {
      if (given) {
        const tables = await client.query(
          'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
          [schema],
        );
        for (const t of tables.rows)
          await client.query(`DROP TABLE IF EXISTS "${schema}"."${t.table_name}"`);
        if (!crate) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      }
      await client.end();
      await server?.stop();
      if (harness) await stopProcess(harness.child);
    },
  };
}

/** The CrateDB harness as its own process (tables in its memory). */
async function startCrateHarness(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  return spawnReady('test/support/cratedb/standalone.ts', ['--port', String(port)]);
}

export function stopProcess(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

/** `relay <args>` from the build (run `npm run build` first), output kept for errors. */
export function relayProcess(args: string[]): {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
} {
  // BENCH_PROFILE=1: the relay writes a V8 CPU profile to bench/out/ (summarize with bench/profile.ts).
  const profile =
    process.env.BENCH_PROFILE && args[0] === 'cdc-relay'
      ? ['--cpu-prof', '--cpu-prof-dir=bench/out']
      : [];
  const child = track(
    spawn(process.execPath, [...profile, 'bin/relay.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let output = '';
  child.stdout!.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr!.on('data', (d) => (output = (output + d).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Runs `relay <args>` to its end; throws with its output when it fails. */
export async function runRelay(args: string[]): Promise<string> {
  return (await runRelaySampled(args)).output;
}

/**
 * Runs `relay <args>` to its end, sampling its memory; throws with its output when it fails
 * (`allowed` lists other exit codes that are answers, such as verify's 1).
 */
export async function runRelaySampled(
  args: string[],
  allowed: number[] = [],
): Promise<{ output: string; code: number; peakRssMb: number }> {
  const run = relayProcess(args);
  const memory = sampleMemory(run.child.pid!);
  const code = await run.exited;
  memory.stop();
  if (code !== 0 && !allowed.includes(code ?? -1)) {
    throw new Error(`relay ${args[0]} exited ${code}:\n${run.output()}`);
  }
  return { output: run.output(), code: code ?? -1, peakRssMb: memory.peakMb() };
}

/** Samples a process's resident memory every 100 ms until stopped or gone. */
function sampleMemory(pid: number): { peakMb(): number; samples: number[]; stop(): void } {
  const samples: number[] = [];
  let peak = 0;
  const sample = () => {
    const rss = statusField(pid, 'VmRSS');
    const hwm = statusField(pid, 'VmHWM');
    if (rss !== null) samples.push(rss);
    if (hwm !== null) peak = Math.max(peak, hwm);
  };
  sample();
  const timer = setInterval(sample, 100);
  return {
    peakMb: () => {
      sample();
      return peak;
    },
    samples,
    stop: () => {
      sample();
      clearInterval(timer);
    },
  };
}

export interface RunningRelay {
  child: ChildProcess;
  metricsPort: number;
  /** Peak resident memory of the relay process so far, in MB (VmHWM, sampled). */
  peakRssMb(): number;
  /** RSS samples over the run, in MB. */
  rssSamples: number[];
  /** CPU seconds (user + system) of the relay process so far; the last sample once it exited. */
  cpuSeconds(): number;
  metrics(): Promise<Map<string, number>>;
  stop(): Promise<void>;
}

const CLOCK_TICKS =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User + system CPU seconds of a running process (/proc/<pid>/stat utime and stime), or null. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3, state.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

function statusField(pid: number, field: string): number | null {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      fs.readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** The arguments of `relay cdc-relay <args>` answering metrics on `metricsPort`, logging warnings only. */
export function cdcRelayArgs(args: string[], metricsPort: number): string[] {
  return ['cdc-relay', ...args, '--metrics-port', String(metricsPort), '--log-level', 'warn'];
}

/** The relay's metrics on `metricsPort`, by name with labels. */
export async function scrapeMetrics(metricsPort: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

/** `relay cdc-relay <args>` with a metrics port, sampling its memory every 100 ms. */
export async function startRelay(args: string[]): Promise<RunningRelay> {
  const metricsPort = await freePort();
  const run = relayProcess(cdcRelayArgs(args, metricsPort));
  const pid = run.child.pid!;
  const memory = sampleMemory(pid);
  let cpu = 0;
  const sampleCpu = () => (cpu = cpuSeconds(pid) ?? cpu);
  const sampler = setInterval(sampleCpu, 100);
  const metrics = () => scrapeMetrics(metricsPort);
  // Ready when /metrics answers.
  for (let i = 0; ; i++) {
    if (run.child.exitCode !== null)
      throw new Error(`relay exited ${run.child.exitCode}:\n${run.output()}`);
    try {
      await metrics();
      break;
    } catch {
      if (i > 300) throw new Error(`relay metrics never answered:\n${run.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    child: run.child,
    metricsPort,
    peakRssMb: memory.peakMb,
    rssSamples: memory.samples,
    cpuSeconds: sampleCpu,
    metrics,
    stop: async () => {
      clearInterval(sampler);
      memory.stop();
      await stopProcess(run.child);
    },
  };
}

/** Sum of a metric over all its label sets. */
export function total(metrics: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [key, value] of metrics) if (key === name || key.startsWith(`${name}{`)) sum += value;
  return sum;
}

export async function waitUntil(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** Prints the result as the last line (JSON) for bench/run.ts. */
export function emit(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** The target's ceiling: the same rows, upserted in 1000-row statements, no MongoDB involved. */
export async function ceiling(
  target: Target,
  tables: string[],
): Promise<{ rows: number; seconds: number }> {
  const connection = await connectTarget(target.url, 'auto');
  try {
    const writer = new TargetWriter(connection.db, connection.dialect, {
      schema: target.schema,
      streamId: 'ceiling',
      onError: 'fail',
      objectPolicy: 'dynamic',
      tableFor: (collection) => `ceiling_${collection}`,
    });
    // Rows written straight, not from events: no event to name in a dead letter.
    const ceilingEvent = ChangeEvent.fromDocument({ operationType: 'insert' });
    let rows = 0;
    let seconds = 0;
    for (const table of tables) {
      await writer.prepare([table]);
      const data = await target.query<{ oid: string; data: string }>(
        `SELECT oid, data::text AS data FROM "${target.schema}"."${table}"`,
      );
      const rowEvents: RowEvent[] = data.map((r) => ({
        type: 'row',
        collection: table,
        oid: r.oid,
        change: upsertOf(parseStoredJson(r.data) as Document, keepKeys),
        event: ceilingEvent,
      }));
      const started = process.hrtime.bigint();
      for (let i = 0; i < rowEvents.length; i += 1000)
        await writer.write(foldBatch(rowEvents.slice(i, i + 1000)), null);
      seconds += Number(process.hrtime.bigint() - started) / 1e9;
      rows += rowEvents.length;
    }
    return { rows, seconds };
  } finally {
    await connection.close();
  }
}

/**
 * A TCP proxy in front of the target that holds every chunk from the client for `delayMs`
 * (order kept): a slow target, whatever its kind. Returns the URL to use instead.
 */
export async function slowProxy(
  url: string,
  delayMs: number,
): Promise<{ url: string; close(): Promise<void> }> {
  const { default: net } = await import('node:net');
  const upstream = new URL(url);
  const sockets = new Set<import('node:net').Socket>();
  const server = net.createServer((client) => {
    const backend = net.connect(Number(upstream.port || 5432), upstream.hostname);
    sockets.add(client).add(backend);
    let chain = Promise.resolve();
    client.on('data', (chunk) => {
      chain = chain
        .then(() => new Promise((r) => setTimeout(r, delayMs)))
        .then(() => void backend.write(chunk));
    });
    backend.pipe(client);
    const close = () => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', close).on('close', close);
    backend.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as import('node:net').AddressInfo).port);
  return {
    url: proxied.toString(),
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Collections that keep pre- and post-images (changeStreamPreAndPostImages), so change events
 * carry the post-image stored with each write, as MongoDB does.
 */
export async function createImageCollections(
  harness: Harness,
  database: string,
  collections: string[],
): Promise<void> {
  const client = new MongoClient(harness.url);
  try {
    for (const collection of collections) {
      await client
        .db(database)
        .createCollection(collection, { changeStreamPreAndPostImages: { enabled: true } });
    }
  } finally {
    await client.close();
  }
}

/** `relay db-workload` on the harness; returns its summary line and what it loaded and did. */
export async function workload(
  harness: Harness,
  database: string,
  collection: string,
  scenario: string,
  ...args: string[]
): Promise<{ summary: string; loaded: number; operations: number }> {
  const out = await runRelay([
    'db-workload',
    ...['--mongodb-url', harness.url, '--database', database, '--collection', collection],
    ...['--scenario', scenario, ...args],
  ]);
  const summary = out.trim().split('\n').at(-1)!;
  const match = /(?:loaded (\d+) starting documents; )?(\d+) operations/.exec(summary);
  return { summary, loaded: Number(match?.[1] ?? 0), operations: Number(match?.[2] ?? 0) };
}

/** `relay verify` of one collection against its table; returns the report line (or JSON). */
export async function verifyTable(
  harness: Harness,
  target: Target,
  database: string,
  collection: string,
  ...args: string[]
): Promise<string> {
  const out = await runRelay([
    'verify',
    ...['--mongodb-url', harness.url, '--database', database, '--collection', collection],
    ...['--target-url', target.url, '--schema', target.schema, ...args],
  ]);
  return out.trim().split('\n').at(-1)!;
}

export interface CatchUp {
  events: number;
  seconds: number;
  eventsPerS: number;
  /** CPU time of the relay process per event, from when it answered to when it caught up. */
  relayCpuUsPerEvent: number;
  /** CPU time of the MongoDB harness per event meanwhile: what serving the events cost. */
  harnessCpuUsPerEvent: number;
  peakRssMb: number;
}

/**
 * Starts the relay on a backlog of `events` and measures it catching up: wall time from the
 * start, and the CPU time each process used per event from the relay's first answer on (module
 * loading and connecting are not per-event work).
 */
export async function catchUp(
  harness: Harness,
  args: string[],
  events: number,
  counter = 'relay_events_written_total',
): Promise<CatchUp> {
  const started = process.hrtime.bigint();
  const relay = await startRelay(args);
  const fromEvents = total(await relay.metrics(), counter);
  const fromRelayCpu = relay.cpuSeconds();
  const fromHarnessCpu = harness.cpuSeconds();
  let done = fromEvents;
  // Scraping /metrics costs the relay CPU (a few % at 5 scrapes a second): poll about three times
  // in the time left, at most once a second, at least every 100 ms near the end.
  const deadline = Date.now() + 30 * 60_000;
  while (relay.child.exitCode === null) {
    done = total(await relay.metrics().catch(() => new Map()), counter) || done;
    if (done >= events) break;
    if (Date.now() > deadline) throw new Error('timed out waiting for catch-up');
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const left = (events - done) / (Math.max(1, done - fromEvents) / elapsed);
    await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(100, (left * 1000) / 3))));
  }
  const relayCpu = relay.cpuSeconds() - fromRelayCpu;
  const harnessCpu = harness.cpuSeconds() - fromHarnessCpu;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const peakRssMb = relay.peakRssMb();
  await relay.stop();
  // A relay that exits when done (--snapshot only) may end before its last count was seen.
  const measured = Math.max(1, (relay.child.exitCode !== null ? events : done) - fromEvents);
  return {
    events,
    seconds,
    eventsPerS: events / seconds,
    relayCpuUsPerEvent: (relayCpu * 1e6) / measured,
    harnessCpuUsPerEvent: (harnessCpu * 1e6) / measured,
    peakRssMb,
  };
}
