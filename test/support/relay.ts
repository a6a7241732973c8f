// Helpers for integration tests: run the relay (in-process or as a child process), wait for
// conditions, and compare a table with its collection through the relay's own conversion.
import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import type { Collection, Document } from 'mongodb';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { main } from '../../src/cli.js';
import { canonicalJson, parseStoredJson } from '../../src/convert/stored.js';
import { rowJson, oidOf, keepKeys } from '../../src/convert/value.js';
import { jsonAsText } from '../../src/target/connect.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import type { TestTarget } from './target.js';

export async function waitFor<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value as T;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

export interface CliResult {
  code: number;
  stderr: string;
  stdout: string;
}

/** Runs `relay <args>` in this process, capturing what it prints. */
export async function runCli(args: string[]): Promise<CliResult> {
  let stderr = '';
  let stdout = '';
  const writeErr = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    const code = await main(['node', 'relay', ...args]);
    return { code, stderr, stdout };
  } finally {
    process.stderr.write = writeErr;
    process.stdout.write = writeOut;
  }
}

export interface RelayProcess {
  child: ChildProcess;
  output(): string;
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/** Starts `relay <args>` as a child process (the CLI from source, through tsx). */
export function spawnRelay(args: string[], env: Record<string, string> = {}): RelayProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/relay-cli.ts', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    waitForOutput: (pattern, timeoutMs = 20_000) =>
      waitFor(() => pattern.test(output), `relay output ${pattern}`, timeoutMs).then(
        () => undefined,
      ),
  };
}

/** Runs one query on the test target (CrateDB tables refreshed first, so reads see writes). */
export async function query<T extends Record<string, unknown> = Record<string, unknown>>(
  target: TestTarget,
  text: string,
  params: unknown[] = [],
  refresh?: string,
  { jsonText = false } = {},
): Promise<T[]> {
  const client = new pg.Client({
    connectionString: target.url,
    // JSON as its text, for exact comparisons (JSON.parse rounds 64-bit integers).
    ...(jsonText ? { types: { getTypeParser: jsonAsText } } : {}),
  });
  await client.connect();
  try {
    if (refresh && target.dialect === 'cratedb') await client.query(`REFRESH TABLE ${refresh}`);
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Rows of a target table by oid. */
export async function tableRows(target: TestTarget, table: string): Promise<Map<string, unknown>> {
  const name = `"${target.schema}"."${table}"`;
  const rows = await query(target, `SELECT oid, data FROM ${name}`, [], name);
  return new Map(rows.map((r) => [r.oid as string, r.data]));
}

/** How many rows a target table holds; cheaper than tableRows for a test that polls. */
export async function rowCount(target: TestTarget, table: string): Promise<number> {
  const name = `"${target.schema}"."${table}"`;
  const rows = await query(target, `SELECT count(*) AS n FROM ${name}`, [], name);
  return Number(rows[0]!.n);
}

export async function tableExists(target: TestTarget, table: string): Promise<boolean> {
  const rows = await query(
    target,
    'SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2',
    [target.schema, table],
  );
  return rows.length > 0;
}

/** The names of the tables in the test schema. */
export async function tableNames(target: TestTarget): Promise<string[]> {
  const rows = await query(
    target,
    'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
    [target.schema],
  );
  return rows.map((r) => r.table_name as string);
}

/**
 * Waits until the table holds exactly the collection (converted), but for the documents whose
 * oids are `refused`: those must be dead letters instead. Fails with the differences.
 */
export async function expectConverges(
  collection: Collection<Document>,
  target: TestTarget,
  table = collection.collectionName,
  timeoutMs = 20_000,
  refused: string[] = [],
): Promise<void> {
  let diff: string[] = [];
  try {
    await waitFor(
      async () => {
        diff = await tableDiff(collection, target, table, refused);
        return diff.length === 0;
      },
      `${target.schema}.${table} to equal ${collection.collectionName}`,
      timeoutMs,
      250,
    );
  } catch {
    throw new Error(
      `${table} differs from ${collection.collectionName}:\n${diff.slice(0, 10).join('\n')}`,
    );
  }
}

/** Differences between a collection and its table, after the relay's conversion. */
export async function tableDiff(
  collection: Collection<Document>,
  target: TestTarget,
  table: string,
  refused: string[] = [],
): Promise<string[]> {
  const keys = target.dialect === 'cratedb' ? crateDialect.objectKey : keepKeys;
  const name = `"${target.schema}"."${table}"`;
  const rows = new Map(
    (await query(target, `SELECT oid, data FROM ${name}`, [], name, { jsonText: true })).map(
      (r) => [r.oid as string, canonicalJson(parseStoredJson(r.data))],
    ),
  );
  const docs = await collection.find({}, { promoteLongs: false }).toArray();
  const problems: string[] = [];
  const letters = refused.length
    ? new Set(await deadLetterOids(target, `${collection.dbName}.${collection.collectionName}`))
    : new Set<string>();
  for (const oid of refused) if (!letters.has(oid)) problems.push(`not dead-lettered ${oid}`);
  for (const doc of docs) {
    const oid = oidOf(doc._id);
    // Key order and number spelling aside (JSONB reorders keys), exactly what the relay writes.
    const expected = canonicalJson(parseStoredJson(rowJson(doc, keys)));
    if (refused.includes(oid)) {
      if (rows.delete(oid)) problems.push(`written although refused ${oid}`);
      continue;
    }
    if (!rows.has(oid)) problems.push(`missing ${oid}`);
    else if (rows.get(oid) !== expected) {
      problems.push(`different ${oid}: ${rows.get(oid)} != ${expected}`);
    }
    rows.delete(oid);
  }
  for (const oid of rows.keys()) problems.push(`extra ${oid}`);
  return problems;
}

/** The oids of the dead letters of a namespace (`database.collection`). */
export async function deadLetterOids(target: TestTarget, ns: string): Promise<string[]> {
  const table = `"${target.schema}"."relay_dead_letters"`;
  if (!(await tableExists(target, 'relay_dead_letters'))) return [];
  const rows = await query(target, `SELECT oid FROM ${table} WHERE ns = $1`, [ns], table);
  return rows.map((r) => r.oid as string).sort();
}

export function capture(): { stream: PassThrough; text(): string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d) => (text += d));
  return { stream, text: () => text };
}

/** Options of `relay <command> <args>` as the CLI parses them (defaults and env included). */
export async function parseOptions(
  command: string,
  args: string[],
): Promise<Record<string, unknown>> {
  const { buildProgram } = await import('../../src/cli.js');
  const program = buildProgram();
  const sub = program.commands.find((c) => c.name() === command)!;
  let parsed: Record<string, unknown> = {};
  sub.action((...params: unknown[]) => {
    parsed = (params.at(-1) as { opts(): Record<string, unknown> }).opts();
  });
  // A parse error throws here instead of ending the test process.
  program.exitOverride();
  await program.parseAsync(['node', 'relay', command, ...args]);
  return parsed;
}

export interface RunningRelay {
  /** Stops it (after the batch in flight) and waits until it has. */
  stop(): Promise<void>;
  /** Settles when the relay ends by itself (an error, or --snapshot only). */
  done: Promise<import('../../src/relay/pipeline.js').Relay>;
}

/** `relay cdc-relay <args>` in this process; resolves once every later write will be relayed. */
export async function startRelay(args: string[]): Promise<RunningRelay> {
  const { cdcRelay } = await import('../../src/commands/cdc-relay.js');
  const { relaySettings } = await import('../../src/config.js');
  const settings = relaySettings(
    // RELAY_TEST_LOG=debug shows the in-process relay's log while a test runs.
    await parseOptions('cdc-relay', [
      '--progress-interval',
      '3600',
      '--log-level',
      process.env.RELAY_TEST_LOG ?? 'warn',
      ...args,
    ]),
  );
  const controller = new AbortController();
  let started!: (relay: import('../../src/relay/pipeline.js').Relay) => void;
  const relay = new Promise<import('../../src/relay/pipeline.js').Relay>(
    (resolve) => (started = resolve),
  );
  const done = cdcRelay(settings, { signal: controller.signal, onStart: started });
  done.catch(() => {});
  // Returns once the start position is fixed (or the relay has already failed).
  await Promise.race([relay.then((r) => r.ready), done.catch(() => undefined)]);
  return {
    done,
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}

export interface Source {
  mongo: import('./mongo/index.js').TestMongo;
  client: import('mongodb').MongoClient;
}

export interface Servers extends Source {
  target: TestTarget;
}

/** A MongoDB (harness or TEST_MONGODB_URL) and a connected client. */
export async function startSource(): Promise<Source> {
  const { startMongo } = await import('./mongo/index.js');
  const { MongoClient } = await import('mongodb');
  const mongo = await startMongo();
  const client = new MongoClient(mongo.url);
  await client.connect();
  return { mongo, client };
}

/** The source, and this file's own target. */
export async function startServers(): Promise<Servers> {
  const { createTestTarget } = await import('./target.js');
  return { ...(await startSource()), target: await createTestTarget() };
}

// This test file's servers, set before its tests by useServers (useSource sets mongo and client
// only). Vitest gives each test file its own modules, so they are the file's own, and a file's
// imports of them are live bindings: they hold the servers from its beforeAll on.
export let servers: Servers;
export let mongo: Source['mongo'];
export let client: Source['client'];
export let target: TestTarget;

/** Starts the servers (`servers`, `mongo`, `client`, `target`) before this file's tests, stops them after. */
export function useServers(): void {
  useStarted(startServers, (started) => {
    servers = started;
    ({ mongo, client, target } = started);
  });
}

/** For tests that never touch a target: only the source (`mongo`, `client`). */
export function useSource(): void {
  useStarted(startSource, (started) => ({ mongo, client } = started));
}

function useStarted<T extends Partial<Servers>>(
  start: () => Promise<T>,
  use: (started: T) => void,
) {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
    use(started);
  });
  afterAll(() => stopServers(started ?? {}));
}

export async function stopServers(servers: Partial<Servers>): Promise<void> {
  await servers.client?.close();
  await servers.mongo?.stop();
  await servers.target?.cleanup();
}

/** `relay db-workload` on `database`.`collection` of `mongo`, in this process. */
export function runWorkload(
  mongo: Source['mongo'],
  database: string,
  collection: string,
  ...args: string[]
): Promise<CliResult> {
  return runCli([
    'db-workload',
    '--mongodb-url',
    mongo.url,
    '--database',
    database,
    '--collection',
    collection,
    ...args,
  ]);
}

/** `cdc-relay` arguments for `database` on these servers; later flags override earlier ones. */
export function relayArgs(servers: Servers, database: string, ...extra: string[]): string[] {
  return [
    '--mongodb-url',
    servers.mongo.url,
    '--database',
    database,
    '--target-url',
    servers.target.url,
    '--schema',
    servers.target.schema,
    '--batch-wait-ms',
    '50',
    ...extra,
  ];
}
