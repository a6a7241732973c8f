// A runner for MongoDB's unified-format spec tests (mongodb/specifications,
// source/unified-test-format/unified-test-format.md), as far as the change-streams suite
// (source/change-streams/tests/unified/*.json) uses it. The suite is CC BY-NC-SA: keep it
// outside this repository and point the runner at it:
//
//   npx tsx test/support/mongo/unified-runner.ts /work/spec [--url mongodb://…] [--filter text]
//
// Without --url it starts the MongoDB harness and runs against it over the wire. It prints one
// line per test and a summary, and exits non-zero when an applicable test fails.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  Binary,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  MongoClient,
  MongoServerError,
  ObjectId,
  Timestamp,
  type ChangeStream,
  type Collection,
  type CommandStartedEvent,
  type Db,
  type Document,
} from 'mongodb';
import { EJSON } from 'bson';
import { MongoHarness } from './server.js';

const OPERATION_TIMEOUT_MS = 15_000;

type Entity =
  | { kind: 'client'; client: MongoClient; events: CommandStartedEvent[] }
  | { kind: 'database'; db: Db }
  | { kind: 'collection'; collection: Collection<Document> }
  | { kind: 'changeStream'; stream: ChangeStream<Document> };

interface Server {
  version: number[];
  topology: 'single' | 'replicaset' | 'sharded';
}

class Failure extends Error {}

function fail(message: string): never {
  throw new Failure(message);
}

// ---- requirements -------------------------------------------------------------------------

function parseVersion(version: string): number[] {
  return version.split('.').map(Number);
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Why a requirement is not met, or null when it is. */
function unmet(requirement: Document, server: Server): string | null {
  if (requirement.minServerVersion) {
    const min = parseVersion(requirement.minServerVersion);
    if (compareVersions(server.version, min) < 0)
      return `needs server ≥ ${requirement.minServerVersion}`;
  }
  if (requirement.maxServerVersion) {
    const max = parseVersion(requirement.maxServerVersion);
    if (compareVersions(server.version, max) > 0)
      return `needs server ≤ ${requirement.maxServerVersion}`;
  }
  if (requirement.topologies) {
    const topologies: string[] = requirement.topologies;
    const ok =
      topologies.includes(server.topology) ||
      (server.topology === 'sharded' && topologies.includes('sharded-replicaset'));
    if (!ok) return `needs topology ${topologies.join('/')}`;
  }
  if (requirement.serverless === 'require') return 'needs serverless';
  if (requirement.auth === true) return 'needs authentication';
  if (requirement.csfle) return 'needs CSFLE';
  if (requirement.serverParameters) return 'checks server parameters';
  return null;
}

function requirementsUnmet(requirements: Document[] | undefined, server: Server): string | null {
  if (!requirements?.length) return null;
  const reasons = requirements.map((r) => unmet(r, server));
  return reasons.includes(null) ? null : reasons.join('; ');
}

// ---- matching (unified-test-format.md "Evaluating Matches") --------------------------------

function isDocument(v: unknown): v is Document {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)
  );
}

function operatorOf(v: unknown): string | null {
  if (!isDocument(v)) return null;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0]!.startsWith('$$') ? keys[0]! : null;
}

function asNumber(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (v instanceof Int32 || v instanceof Double) return v.valueOf();
  if (v instanceof Long) return v.toNumber();
  return null;
}

function typeNames(v: unknown): string[] {
  if (v === null) return ['null'];
  if (v === undefined) return ['undefined'];
  if (typeof v === 'boolean') return ['bool'];
  if (typeof v === 'string') return ['string'];
  if (typeof v === 'number')
    return Number.isInteger(v) ? ['int', 'double', 'number'] : ['double', 'number'];
  if (v instanceof Int32) return ['int', 'number'];
  if (v instanceof Double) return ['double', 'number'];
  if (v instanceof Long) return ['long', 'number'];
  if (v instanceof Decimal128) return ['decimal', 'number'];
  if (v instanceof Date) return ['date'];
  if (v instanceof Timestamp) return ['timestamp'];
  if (v instanceof ObjectId) return ['objectId'];
  if (v instanceof Binary) return ['binData'];
  if (v instanceof MinKey) return ['minKey'];
  if (v instanceof MaxKey) return ['maxKey'];
  if (v instanceof RegExp) return ['regex'];
  if (Array.isArray(v)) return ['array'];
  return ['object'];
}

function match(expected: unknown, actual: unknown, at: string, root: boolean): void {
  const operator = operatorOf(expected);
  if (operator) return matchOperator(operator, (expected as Document)[operator], actual, at, root);
  if (isDocument(expected)) {
    if (!isDocument(actual)) fail(`${at}: expected a document, got ${show(actual)}`);
    for (const [key, value] of Object.entries(expected)) {
      const op = operatorOf(value);
      const present =
        Object.prototype.hasOwnProperty.call(actual, key) && actual[key] !== undefined;
      if (op === '$$exists') {
        if (present !== Boolean(value.$$exists)) {
          fail(`${at}.${key}: expected ${value.$$exists ? 'present' : 'absent'}`);
        }
        continue;
      }
      if (op === '$$unsetOrMatches') {
        if (present) match(value.$$unsetOrMatches, actual[key], `${at}.${key}`, false);
        continue;
      }
      if (!present) fail(`${at}.${key}: missing (expected ${show(value)})`);
      match(value, actual[key], `${at}.${key}`, false);
    }
    if (!root) {
      const extra = Object.keys(actual).filter((k) => !(k in expected) && actual[k] !== undefined);
      if (extra.length) fail(`${at}: unexpected fields ${extra.join(', ')} in ${show(actual)}`);
    }
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) fail(`${at}: expected an array, got ${show(actual)}`);
    if (actual.length !== expected.length) {
      fail(`${at}: expected ${expected.length} elements, got ${actual.length}: ${show(actual)}`);
    }
    expected.forEach((e, i) => match(e, actual[i], `${at}[${i}]`, false));
    return;
  }
  const e = asNumber(expected);
  if (e !== null) {
    if (asNumber(actual) !== e) fail(`${at}: expected ${show(expected)}, got ${show(actual)}`);
    return;
  }
  if (EJSON.stringify({ v: expected }) !== EJSON.stringify({ v: actual })) {
    fail(`${at}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

function matchOperator(
  operator: string,
  argument: unknown,
  actual: unknown,
  at: string,
  root: boolean,
): void {
  switch (operator) {
    case '$$exists':
      if ((actual !== undefined) !== Boolean(argument)) fail(`${at}: $$exists ${argument}`);
      return;
    case '$$type': {
      const wanted = Array.isArray(argument) ? argument : [argument];
      const names = typeNames(actual);
      if (!wanted.some((t) => names.includes(String(t)))) {
        fail(`${at}: expected type ${wanted.join('|')}, got ${names[0]} ${show(actual)}`);
      }
      return;
    }
    case '$$unsetOrMatches':
      if (actual !== undefined) match(argument, actual, at, root);
      return;
    case '$$lte': {
      const a = asNumber(actual);
      if (a === null || a > (asNumber(argument) ?? NaN))
        fail(`${at}: expected ≤ ${show(argument)}`);
      return;
    }
    case '$$matchAsDocument':
      if (typeof actual !== 'string') fail(`${at}: $$matchAsDocument needs a string`);
      match(argument, EJSON.parse(actual, { relaxed: true }), at, false);
      return;
    case '$$matchAsRoot':
      match(argument, actual, at, true);
      return;
    default:
      fail(`${at}: unsupported match operator ${operator}`);
  }
}

function show(v: unknown): string {
  const text = EJSON.stringify(v as Document, { relaxed: true }) ?? String(v);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

// ---- entities and operations ------------------------------------------------------------------

const SENSITIVE = new Set([
  'authenticate',
  'saslStart',
  'saslContinue',
  'getnonce',
  'createUser',
  'updateUser',
  'copydbgetnonce',
  'copydbsaslstart',
  'copydb',
  'hello',
  'isMaster',
  'ismaster',
]);

class TestRun {
  readonly entities = new Map<string, Entity>();
  private readonly failPoints: { client: MongoClient; name: string }[] = [];

  constructor(private readonly url: string) {}

  async createEntities(definitions: Document[]): Promise<void> {
    for (const definition of definitions) {
      const [type, spec] = Object.entries(definition)[0] as [string, Document];
      if (this.entities.has(spec.id)) fail(`entity ${spec.id} defined twice`);
      switch (type) {
        case 'client': {
          const observe = new Set<string>(spec.observeEvents ?? []);
          const ignore = new Set<string>(spec.ignoreCommandMonitoringEvents ?? []);
          const client = new MongoClient(this.url, {
            ...(spec.uriOptions ?? {}),
            monitorCommands: true,
            serverSelectionTimeoutMS: 10_000,
          });
          const events: CommandStartedEvent[] = [];
          if (observe.has('commandStartedEvent')) {
            client.on('commandStarted', (event) => {
              if (ignore.has(event.commandName) || SENSITIVE.has(event.commandName)) return;
              if (event.commandName === 'configureFailPoint') return;
              events.push(event);
            });
          }
          const unsupported = [...observe].filter((e) => e !== 'commandStartedEvent');
          if (unsupported.length) fail(`unsupported observeEvents ${unsupported.join(', ')}`);
          await client.connect();
          this.entities.set(spec.id, { kind: 'client', client, events });
          break;
        }
        case 'database': {
          const client = this.client(spec.client);
          this.entities.set(spec.id, {
            kind: 'database',
            db: client.client.db(spec.databaseName, spec.databaseOptions),
          });
          break;
        }
        case 'collection': {
          const db = this.database(spec.database);
          this.entities.set(spec.id, {
            kind: 'collection',
            collection: db.collection(spec.collectionName, spec.collectionOptions),
          });
          break;
        }
        default:
          fail(`unsupported entity type ${type}`);
      }
    }
  }

  private entity(id: string): Entity {
    return this.entities.get(id) ?? fail(`no entity ${id}`);
  }

  client(id: string) {
    const e = this.entity(id);
    return e.kind === 'client' ? e : fail(`${id} is not a client`);
  }

  private database(id: string): Db {
    const e = this.entity(id);
    return e.kind === 'database' ? e.db : fail(`${id} is not a database`);
  }

  async run(operation: Document): Promise<unknown> {
    const args: Document = operation.arguments ?? {};
    if (operation.object === 'testRunner') return this.special(operation.name, args);
    const target = this.entity(operation.object);
    const { session: _session, ...rest } = args;
    switch (`${target.kind}.${operation.name}`) {
      case 'client.createChangeStream':
      case 'database.createChangeStream':
      case 'collection.createChangeStream': {
        const { pipeline = [], ...options } = rest;
        const watchable =
          target.kind === 'client'
            ? target.client
            : target.kind === 'database'
              ? target.db
              : (target as { collection: Collection<Document> }).collection;
        const stream = watchable.watch(pipeline, options) as ChangeStream<Document>;
        // The unified format wants the aggregate sent now; the driver exposes cursorInit for it.
        await (
          stream as unknown as { cursor: { cursorInit(): Promise<void> } }
        ).cursor.cursorInit();
        return { kind: 'changeStream', stream } satisfies Entity;
      }
      case 'changeStream.iterateUntilDocumentOrError':
        return (target as { stream: ChangeStream<Document> }).stream.next();
      case 'changeStream.iterateOnce':
        return (target as { stream: ChangeStream<Document> }).stream.tryNext();
      case 'changeStream.close':
        return (target as { stream: ChangeStream<Document> }).stream.close();
      case 'database.runCommand':
        return (target as { db: Db }).db.command(rest.command, {
          ...(rest.readPreference ? { readPreference: rest.readPreference } : {}),
        });
      case 'database.createCollection': {
        const { collection, ...options } = rest;
        await (target as { db: Db }).db.createCollection(collection, options);
        return undefined;
      }
      case 'database.dropCollection': {
        const { collection, ...options } = rest;
        await (target as { db: Db }).db.dropCollection(collection, options);
        return undefined;
      }
      case 'database.aggregate':
        return (target as { db: Db }).db.aggregate(rest.pipeline, rest).toArray();
      case 'database.listCollections':
        return (target as { db: Db }).db.listCollections(rest.filter ?? {}).toArray();
    }
    if (target.kind !== 'collection')
      fail(`unsupported operation ${target.kind}.${operation.name}`);
    const c = target.collection;
    switch (operation.name) {
      case 'insertOne': {
        const { document, ...options } = rest;
        const result = await c.insertOne(document, options);
        return { insertedId: result.insertedId };
      }
      case 'insertMany': {
        const { documents, ...options } = rest;
        const result = await c.insertMany(documents, options);
        return { insertedIds: result.insertedIds };
      }
      case 'updateOne':
      case 'updateMany': {
        const { filter, update, ...options } = rest;
        const result = await (operation.name === 'updateOne' ? c.updateOne : c.updateMany).call(
          c,
          filter,
          update,
          options,
        );
        return updateResult(result);
      }
      case 'replaceOne': {
        const { filter, replacement, ...options } = rest;
        return updateResult(await c.replaceOne(filter, replacement, options));
      }
      case 'deleteOne':
      case 'deleteMany': {
        const { filter, ...options } = rest;
        const result = await (operation.name === 'deleteOne' ? c.deleteOne : c.deleteMany).call(
          c,
          filter,
          options,
        );
        return { deletedCount: result.deletedCount };
      }
      case 'createIndex': {
        const { keys, ...options } = rest;
        return c.createIndex(keys, options);
      }
      case 'dropIndex': {
        const { name, ...options } = rest;
        await c.dropIndex(name, options);
        return undefined;
      }
      case 'rename': {
        const { to, ...options } = rest;
        await c.rename(to, options);
        return undefined;
      }
      case 'drop':
        await c.drop(rest);
        return undefined;
      case 'find': {
        const { filter = {}, ...options } = rest;
        return c.find(filter, options).toArray();
      }
      case 'aggregate': {
        const { pipeline, ...options } = rest;
        return c.aggregate(pipeline, options).toArray();
      }
      default:
        return fail(`unsupported operation collection.${operation.name}`);
    }
  }

  private async special(name: string, args: Document): Promise<unknown> {
    switch (name) {
      case 'failPoint': {
        const { client } = this.client(args.client);
        await client.db('admin').command(args.failPoint);
        this.failPoints.push({ client, name: args.failPoint.configureFailPoint });
        return undefined;
      }
      case 'createEntities':
        return this.createEntities(args.entities);
      case 'wait':
        return new Promise((resolve) => setTimeout(resolve, Number(args.ms)));
      default:
        return fail(`unsupported test runner operation ${name}`);
    }
  }

  async close(): Promise<void> {
    for (const { client, name } of this.failPoints) {
      await client
        .db('admin')
        .command({ configureFailPoint: name, mode: 'off' })
        .catch(() => undefined);
    }
    for (const entity of this.entities.values()) {
      if (entity.kind === 'changeStream') await entity.stream.close().catch(() => undefined);
    }
    for (const entity of this.entities.values()) {
      if (entity.kind === 'client') await entity.client.close().catch(() => undefined);
    }
  }
}

function updateResult(result: Document): Document {
  return {
    matchedCount: result.matchedCount,
    modifiedCount: result.modifiedCount,
    upsertedCount: result.upsertedCount,
    ...(result.upsertedId != null ? { upsertedId: result.upsertedId } : {}),
  };
}

function checkError(expected: Document, error: unknown): void {
  const server = error instanceof MongoServerError ? error : undefined;
  if (expected.isClientError === true && server)
    fail(`expected a client error, got ${server.message}`);
  if (expected.isClientError === false && !server) {
    fail(`expected a server error, got ${(error as Error)?.message}`);
  }
  if (expected.errorCode !== undefined && server?.code !== expected.errorCode) {
    fail(
      `expected error code ${expected.errorCode}, got ${server?.code} (${(error as Error)?.message})`,
    );
  }
  if (
    expected.errorCodeName !== undefined &&
    server?.codeName?.toLowerCase() !== String(expected.errorCodeName).toLowerCase()
  ) {
    fail(`expected error code name ${expected.errorCodeName}, got ${server?.codeName}`);
  }
  if (expected.errorContains !== undefined) {
    const message = String((error as Error)?.message ?? '').toLowerCase();
    if (!message.includes(String(expected.errorContains).toLowerCase())) {
      fail(`expected an error containing "${expected.errorContains}", got "${message}"`);
    }
  }
  const labels = (error as { errorLabels?: string[] })?.errorLabels ?? [];
  for (const label of expected.errorLabelsContain ?? []) {
    if (!labels.includes(label)) fail(`expected error label ${label}, got [${labels.join(', ')}]`);
  }
  for (const label of expected.errorLabelsOmit ?? []) {
    if (labels.includes(label)) fail(`expected no error label ${label}`);
  }
  if (expected.errorResponse)
    match(expected.errorResponse, server?.errorResponse, 'errorResponse', true);
}

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Failure(`${what} did not finish within ${OPERATION_TIMEOUT_MS} ms`)),
      OPERATION_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---- files and tests ---------------------------------------------------------------------------

async function prepareData(internal: MongoClient, initialData: Document[] | undefined) {
  for (const data of initialData ?? []) {
    const db = internal.db(data.databaseName);
    await db.dropCollection(data.collectionName, { writeConcern: { w: 'majority' } });
    if (data.documents?.length) {
      await db
        .collection(data.collectionName)
        .insertMany(data.documents, { writeConcern: { w: 'majority' } });
    } else {
      await db.createCollection(data.collectionName, {
        ...(data.createOptions ?? {}),
        writeConcern: { w: 'majority' },
      });
    }
  }
}

async function runTest(url: string, internal: MongoClient, file: Document, test: Document) {
  await prepareData(internal, file.initialData);
  const run = new TestRun(url);
  try {
    await run.createEntities(file.createEntities ?? []);
    for (const [index, operation] of (test.operations as Document[]).entries()) {
      const what = `operation ${index} (${operation.object}.${operation.name})`;
      let result: unknown;
      let error: unknown;
      let failed = false;
      try {
        result = await withTimeout(Promise.resolve(run.run(operation)), what);
      } catch (e) {
        if (e instanceof Failure) throw e;
        failed = true;
        error = e;
      }
      if (operation.ignoreResultAndError) continue;
      if (operation.expectError) {
        if (!failed) fail(`${what}: expected an error, got ${show(result)}`);
        try {
          checkError(operation.expectError, error);
        } catch (e) {
          throw new Failure(`${what}: ${(e as Error).message}`);
        }
        continue;
      }
      if (failed) fail(`${what}: unexpected error: ${(error as Error)?.message ?? String(error)}`);
      const isEntity = (result as Entity | undefined)?.kind === 'changeStream';
      if (operation.expectResult !== undefined) {
        match(operation.expectResult, isEntity ? undefined : result, `${what} result`, true);
      }
      if (operation.saveResultAsEntity) {
        if (!isEntity) fail(`${what}: result is not an entity`);
        run.entities.set(operation.saveResultAsEntity, result as Entity);
      }
    }
    for (const expected of test.expectEvents ?? []) {
      if ((expected.eventType ?? 'command') !== 'command')
        fail(`unsupported eventType ${expected.eventType}`);
      const observed = run.client(expected.client).events;
      const wanted: Document[] = expected.events;
      if (
        observed.length < wanted.length ||
        (!expected.ignoreExtraEvents && observed.length > wanted.length)
      ) {
        fail(
          `expected ${wanted.length} events on ${expected.client}, observed ${observed.length}: ${observed
            .map((e) => e.commandName)
            .join(', ')}`,
        );
      }
      wanted.forEach((event, i) => {
        const [type, assertion] = Object.entries(event)[0] as [string, Document];
        if (type !== 'commandStartedEvent') fail(`unsupported expected event ${type}`);
        const actual = observed[i]!;
        const at = `event ${i} (${actual.commandName})`;
        if (assertion.commandName !== undefined && assertion.commandName !== actual.commandName) {
          fail(`${at}: expected command ${assertion.commandName}`);
        }
        if (
          assertion.databaseName !== undefined &&
          assertion.databaseName !== actual.databaseName
        ) {
          fail(`${at}: expected database ${assertion.databaseName}, got ${actual.databaseName}`);
        }
        if (assertion.command) match(assertion.command, actual.command, `${at} command`, true);
      });
    }
    for (const outcome of test.outcome ?? []) {
      const docs = await internal
        .db(outcome.databaseName)
        .collection(outcome.collectionName)
        .find({}, { sort: { _id: 1 } })
        .toArray();
      match(outcome.documents, docs, `outcome ${outcome.collectionName}`, false);
    }
  } finally {
    await run.close();
  }
}

function specFiles(inputs: string[]): string[] {
  return inputs.flatMap((input) =>
    statSync(input).isDirectory()
      ? readdirSync(input)
          .filter((f) => f.endsWith('.json'))
          .sort()
          .map((f) => path.join(input, f))
      : [input],
  );
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { url: { type: 'string' }, filter: { type: 'string' } },
  });
  if (positionals.length === 0) {
    console.error(
      'usage: unified-runner.ts <spec dir or .json files…> [--url mongodb://…] [--filter text]',
    );
    return 2;
  }
  const harness = values.url ? undefined : await MongoHarness.start();
  const url = values.url ?? harness!.url;
  const internal = new MongoClient(url, { serverSelectionTimeoutMS: 10_000 });
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  const failures: string[] = [];
  try {
    await internal.connect();
    const admin = internal.db('admin');
    const build = await admin.command({ buildInfo: 1 });
    const hello = await admin.command({ hello: 1 });
    const server: Server = {
      version: parseVersion(String(build.version)),
      topology: hello.msg === 'isdbgrid' ? 'sharded' : hello.setName ? 'replicaset' : 'single',
    };
    console.log(`server ${build.version} ${server.topology} at ${url}`);
    for (const filePath of specFiles(positionals)) {
      const file = EJSON.parse(readFileSync(filePath, 'utf8'), { relaxed: true }) as Document;
      const name = path.basename(filePath, '.json');
      const fileUnmet = requirementsUnmet(file.runOnRequirements, server);
      for (const test of file.tests as Document[]) {
        const title = `${name}: ${test.description}`;
        if (values.filter && !title.includes(values.filter)) continue;
        const reason =
          fileUnmet ??
          requirementsUnmet(test.runOnRequirements, server) ??
          (test.skipReason ? `skipReason: ${test.skipReason}` : null);
        if (reason) {
          skipped++;
          console.log(`  - ${title} (not applicable: ${reason})`);
          continue;
        }
        try {
          await runTest(url, internal, file, test);
          passed++;
          console.log(`  ✓ ${title}`);
        } catch (error) {
          failed++;
          const message = error instanceof Error ? error.message : String(error);
          failures.push(`${title}: ${message}`);
          console.log(`  ✗ ${title}\n      ${message}`);
        }
      }
    }
  } finally {
    await internal.close();
    await harness?.stop();
  }
  console.log(
    `\n${passed} of ${passed + failed} applicable tests passed, ${failed} failed, ${skipped} not applicable`,
  );
  for (const failure of failures) console.log(`FAILED ${failure}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
