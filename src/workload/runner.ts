// Running a scenario: workers that each own a share of the documents (so their operations never
// race and a seed reproduces the same documents), a shared schedule that holds the requested
// rate, and the driver's bulk API for the operations that are due together.
import { Faker, base, en } from '@faker-js/faker';
import {
  MongoBulkWriteError,
  type Collection,
  type Document,
  type Filter,
  type MongoClient,
} from 'mongodb';
import { errorMessage } from '../errors.js';
import { oidOf } from '../convert/value.js';
import {
  OPERATION_TYPES,
  type BulkOperation,
  type Mix,
  type OperationType,
  type Scenario,
  type ScenarioContext,
  type Tracked,
} from './scenarios.js';

export interface WorkloadOptions {
  database: string;
  collection: string;
  scenario: Scenario;
  /** Stop after this many operations (null: no limit). */
  ops: number | null;
  /** Stop after this long (null: no limit). */
  durationMs: number | null;
  /** Operations per second over all workers; 0 for as fast as possible. */
  rate: number;
  concurrency: number;
  mix: Mix;
  seed: number;
  reset: boolean;
  init: boolean;
}

export interface WorkloadSummary {
  scenario: string;
  operations: number;
  byType: Record<OperationType, number>;
  errors: number;
  firstError: string | null;
  elapsedMs: number;
  opsPerSecond: number;
  initialized: number;
}

/** Most operations one bulk write carries when a worker is behind schedule. */
const MAX_BULK = 100;

class Worker {
  private readonly docs: Tracked[] = [];
  private readonly positions = new Map<string, number>();
  readonly ctx: ScenarioContext;

  constructor(
    private readonly scenario: Scenario,
    private readonly mix: Mix,
    seed: number,
    worker: number,
    workers: number,
    private readonly taken: Set<string>,
  ) {
    const faker = new Faker({ locale: [en, base] });
    faker.seed([seed, worker + 1]);
    this.ctx = { faker, worker, workers, sequence: 0 };
  }

  track(doc: Tracked): void {
    const key = oidOf(doc._id);
    this.positions.set(key, this.docs.length);
    this.docs.push(doc);
    this.taken.add(key);
  }

  private untrack(doc: Tracked): void {
    const key = oidOf(doc._id);
    const at = this.positions.get(key)!;
    const last = this.docs.pop()!;
    if (last !== doc) {
      this.docs[at] = last;
      this.positions.set(oidOf(last._id), at);
    }
    this.positions.delete(key);
  }

  private pickType(): OperationType {
    const total = OPERATION_TYPES.reduce((sum, t) => sum + this.mix[t], 0);
    let ticket = this.ctx.faker.number.int({ min: 1, max: total });
    for (const type of OPERATION_TYPES) {
      ticket -= this.mix[type];
      if (ticket <= 0) return type;
    }
    return 'insert';
  }

  private anyDoc(): Tracked {
    return this.docs[this.ctx.faker.number.int({ min: 0, max: this.docs.length - 1 })]!;
  }

  /** The next operation, chosen by the mix from what this worker's documents allow. */
  next(): BulkOperation {
    const type = this.docs.length === 0 ? 'insert' : this.pickType();
    switch (type) {
      case 'insert': {
        const doc = this.scenario.newDocument(this.ctx, (id) => this.taken.has(oidOf(id)));
        this.track({ _id: doc._id, ...trackedValues(doc, this.scenario.trackedFields) });
        return { type, model: { insertOne: { document: doc } } };
      }
      case 'update': {
        const doc = this.scenario.pickUpdate?.(this.ctx, this.docs) ?? this.anyDoc();
        const { update, apply } = this.scenario.update(this.ctx, doc);
        apply(doc);
        return {
          type,
          model: { updateOne: { filter: { _id: doc._id } as Filter<Document>, update } },
        };
      }
      case 'replace': {
        const doc = this.anyDoc();
        const replacement = this.scenario.replacement(this.ctx, doc);
        const model = { replaceOne: { filter: { _id: doc._id } as Filter<Document>, replacement } };
        Object.assign(doc, trackedValues(replacement, this.scenario.trackedFields));
        return { type, model };
      }
      case 'delete': {
        const doc = this.scenario.pickDelete?.(this.ctx, this.docs) ?? this.anyDoc();
        this.untrack(doc);
        return { type, model: { deleteOne: { filter: { _id: doc._id } as Filter<Document> } } };
      }
    }
  }
}

/** The fields of `doc` the scenario keeps track of (never `_id`, which a replacement lacks). */
function trackedValues(doc: Document, fields: Document): Document {
  const out: Document = {};
  for (const field of Object.keys(fields)) if (field in doc) out[field] = doc[field];
  return out;
}

/** Hands out operations when they are due: op k is due at start + k / rate. */
class Schedule {
  private issued = 0;
  private readonly start = Date.now();

  constructor(
    private readonly options: WorkloadOptions,
    private readonly signal: AbortSignal,
  ) {}

  get count(): number {
    return this.issued;
  }

  private remaining(): number {
    const { ops, durationMs } = this.options;
    if (this.signal.aborted) return 0;
    if (durationMs !== null && Date.now() - this.start >= durationMs) return 0;
    return ops === null ? Number.POSITIVE_INFINITY : ops - this.issued;
  }

  /** How many operations (up to `max`) to send now; 0 when the run is over. */
  async acquire(max: number): Promise<number> {
    for (;;) {
      const remaining = this.remaining();
      if (remaining <= 0) return 0;
      const rate = this.options.rate;
      const due =
        rate === 0 ? max : Math.floor(((Date.now() - this.start) * rate) / 1000) + 1 - this.issued;
      if (due >= 1) {
        const n = Math.min(due, max, remaining);
        this.issued += n;
        return n;
      }
      const nextAt = this.start + (this.issued * 1000) / rate;
      await new Promise((r) => setTimeout(r, Math.max(1, Math.min(nextAt - Date.now(), 250))));
    }
  }
}

export interface WorkloadProgress {
  done: number;
  total: number | null;
  elapsedMs: number;
  durationMs: number | null;
  errors: number;
}

export async function runWorkload(
  client: MongoClient,
  options: WorkloadOptions,
  signal: AbortSignal,
  onProgress: (progress: WorkloadProgress) => void = () => {},
): Promise<WorkloadSummary> {
  const db = client.db(options.database);
  const collection = db.collection(options.collection);
  if (options.reset) {
    await collection.drop().catch(() => false);
    await db.createCollection(options.collection);
  }
  const initialized = options.init ? await initialize(collection, options) : 0;

  const taken = new Set<string>();
  const workers = Array.from(
    { length: options.concurrency },
    (_, w) =>
      new Worker(options.scenario, options.mix, options.seed, w, options.concurrency, taken),
  );
  // Existing documents are shared out in `_id` order, so the same collection and seed give the
  // same operations.
  let n = 0;
  const existing = collection.find(
    {},
    { projection: options.scenario.trackedFields, sort: { _id: 1 } },
  );
  for await (const doc of existing) workers[n++ % workers.length]!.track(doc as Tracked);

  const byType: Record<OperationType, number> = { insert: 0, update: 0, replace: 0, delete: 0 };
  let errors = 0;
  let firstError: string | null = null;
  const started = Date.now();
  const schedule = new Schedule(options, signal);
  const report = () =>
    onProgress({
      done: OPERATION_TYPES.reduce((s, t) => s + byType[t], 0),
      total: options.ops,
      elapsedMs: Date.now() - started,
      durationMs: options.durationMs,
      errors,
    });
  const timer = setInterval(report, 200);
  try {
    await Promise.all(
      workers.map(async (worker) => {
        for (;;) {
          const count = await schedule.acquire(MAX_BULK);
          if (count === 0) return;
          const batch = Array.from({ length: count }, () => worker.next());
          try {
            await collection.bulkWrite(
              batch.map((op) => op.model),
              { ordered: true },
            );
            for (const op of batch) byType[op.type]++;
          } catch (error) {
            // An ordered bulk stops at its first failure; the ones before it were applied.
            const applied = appliedBefore(error);
            for (const op of batch.slice(0, applied)) byType[op.type]++;
            errors += batch.length - applied;
            firstError ??= errorMessage(error);
          }
        }
      }),
    );
  } finally {
    clearInterval(timer);
    report();
  }
  const elapsedMs = Date.now() - started;
  const operations = OPERATION_TYPES.reduce((s, t) => s + byType[t], 0);
  return {
    scenario: options.scenario.name,
    operations,
    byType,
    errors,
    firstError,
    elapsedMs,
    opsPerSecond: operations / Math.max(0.001, elapsedMs / 1000),
    initialized,
  };
}

/**
 * Index of the first failed operation of an ordered bulk write (all before it were applied);
 * 0 when the error says nothing about single operations (then none is counted as applied).
 */
function appliedBefore(error: unknown): number {
  const writeErrors = (error as { writeErrors?: { index: number }[] | { index: number } })
    .writeErrors;
  const list = Array.isArray(writeErrors) ? writeErrors : writeErrors ? [writeErrors] : [];
  return list.length ? Math.min(...list.map((e) => e.index)) : 0;
}

/**
 * --init: the scenario's starting documents, in bulk inserts. Their ids come from the seed, so a
 * second --init (a restarted container) finds them there and adds none twice.
 */
async function initialize(
  collection: Collection<Document>,
  options: WorkloadOptions,
): Promise<number> {
  const faker = new Faker({ locale: [en, base] });
  faker.seed([options.seed, 0]);
  let inserted = 0;
  for (let start = 0; start < options.scenario.initCount; start += 1000) {
    const end = Math.min(options.scenario.initCount, start + 1000);
    const docs = Array.from({ length: end - start }, (_, k) =>
      options.scenario.initialDocument(faker, start + k),
    );
    try {
      inserted += (await collection.insertMany(docs, { ordered: false })).insertedCount;
    } catch (error) {
      if (!(error instanceof MongoBulkWriteError) || !onlyDuplicates(error)) throw error;
      inserted += error.result.insertedCount;
    }
  }
  return inserted;
}

function onlyDuplicates(error: MongoBulkWriteError): boolean {
  const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
  return writeErrors.every((e) => e.code === 11000);
}
