// The documents and operations of each db-workload scenario. Everything is drawn from a seeded
// faker, never from the clock or Math.random, so the same seed writes the same documents.
import { Decimal128, Long, ObjectId, type AnyBulkWriteOperation, type Document } from 'mongodb';
import type { Faker } from '@faker-js/faker';

export type OperationType = 'insert' | 'update' | 'replace' | 'delete';
export const OPERATION_TYPES: OperationType[] = ['insert', 'update', 'replace', 'delete'];
export type Mix = Record<OperationType, number>;

/** What a worker remembers of a document it owns, to pick meaningful operations. */
export type Tracked = Document & { _id: unknown };

export interface ScenarioContext {
  faker: Faker;
  /** This worker's number and the number of workers: id spaces never overlap between workers. */
  worker: number;
  workers: number;
  /** A counter private to this worker, for ids and times. */
  sequence: number;
}

export interface Scenario {
  name: string;
  description: string;
  defaultMix: Mix;
  /** How many documents --init loads. */
  initCount: number;
  /** The fields a worker reads back from existing documents to keep its model. */
  trackedFields: Document;
  /** The n-th starting document (n counts over all workers). */
  initialDocument(faker: Faker, n: number): Document;
  newDocument(ctx: ScenarioContext, taken: (id: unknown) => boolean): Document;
  update(ctx: ScenarioContext, doc: Tracked): { update: Document; apply(doc: Tracked): void };
  replacement(ctx: ScenarioContext, doc: Tracked): Document;
  /** Which of the worker's documents a delete removes (defaults to a random one). */
  pickDelete?(ctx: ScenarioContext, docs: Tracked[]): Tracked | undefined;
  /** Documents updated more often than the others (the ticker's familiar symbols). */
  pickUpdate?(ctx: ScenarioContext, docs: Tracked[]): Tracked | undefined;
}

const EPOCH = Date.UTC(2025, 0, 1);

function objectId(faker: Faker): ObjectId {
  return new ObjectId(faker.string.hexadecimal({ length: 24, casing: 'lower', prefix: '' }));
}

function money(faker: Faker, min: number, max: number): number {
  return Math.round(faker.number.float({ min, max }) * 100) / 100;
}

// ---- bank ----------------------------------------------------------------------------------

function account(faker: Faker): Document {
  const negative = faker.number.int({ min: 1, max: 10 }) === 1;
  return {
    _id: objectId(faker),
    accountNumber: Long.fromString(faker.string.numeric({ length: 16, allowLeadingZeros: false })),
    name: faker.person.fullName(),
    email: faker.internet.email().toLowerCase(),
    address: {
      street: faker.location.streetAddress(),
      city: faker.location.city(),
      zip: faker.location.zipCode(),
    },
    opened: faker.date.between({ from: Date.UTC(2000, 0, 1), to: EPOCH }),
    balance: negative ? money(faker, -500, -1) : money(faker, 0, 3000),
    savings: money(faker, 0, 20000),
    interestRate: Decimal128.fromString(
      faker.number.float({ min: 0.1, max: 5, fractionDigits: 2 }).toFixed(2),
    ),
    tags: faker.helpers.arrayElements(['student', 'premium', 'joint', 'business', 'online'], {
      min: 0,
      max: 3,
    }),
    resumeCounter: 0,
  };
}

const bank: Scenario = {
  name: 'bank',
  description:
    'customer accounts: new customers, $100 deposits under $1000, counters over $1000, closing overdrawn accounts',
  defaultMix: { insert: 40, update: 40, replace: 10, delete: 10 },
  initCount: 1000,
  trackedFields: { balance: 1, resumeCounter: 1 },
  initialDocument: (faker) => account(faker),
  newDocument: (ctx) => account(ctx.faker),
  update(_ctx, doc) {
    // Deposits bring small balances up; accounts over $1000 count resumes instead.
    if ((doc.balance as number) < 1000) {
      return {
        update: { $inc: { balance: 100 }, $set: { lastDeposit: new Date(EPOCH) } },
        apply: (d) => void (d.balance = (d.balance as number) + 100),
      };
    }
    return {
      update: { $inc: { resumeCounter: 1 } },
      apply: (d) => void (d.resumeCounter = ((d.resumeCounter as number) ?? 0) + 1),
    };
  },
  replacement(ctx, doc) {
    const { _id: _drop, ...fresh } = account(ctx.faker);
    return { ...fresh, resumeCounter: doc.resumeCounter ?? 0 };
  },
  pickDelete: (ctx, docs) => {
    const overdrawn = docs.filter((d) => (d.balance as number) < 0);
    return overdrawn.length ? ctx.faker.helpers.arrayElement(overdrawn) : undefined;
  },
};

// ---- ticker --------------------------------------------------------------------------------

export const FAMILIAR_SYMBOLS = ['MDB', 'ORCL', 'GOOGL', 'AAPL', 'MSFT', 'AMZN', 'NVDA', 'CRM'];
const FAMILIAR = new Set(FAMILIAR_SYMBOLS);

/** The n-th symbol: A, B, …, Z, AA, AB, … */
function symbolFor(n: number): string {
  let s = '';
  for (let k = n + 1; k > 0; k = Math.floor((k - 1) / 26)) {
    s = String.fromCharCode(65 + ((k - 1) % 26)) + s;
  }
  return s;
}

function symbolIndex(symbol: string): number {
  let k = 0;
  for (const c of symbol) k = k * 26 + (c.charCodeAt(0) - 64);
  return k - 1;
}

const FAMILIAR_INDEXES = FAMILIAR_SYMBOLS.map(symbolIndex).sort((a, b) => a - b);

/** The k-th generated symbol, skipping the familiar ones (so --init never inserts one twice). */
function generatedSymbol(k: number): string {
  let n = k;
  for (const familiar of FAMILIAR_INDEXES) if (familiar <= n) n++;
  return symbolFor(n);
}

function quote(faker: Faker, symbol: string): Document {
  const price = money(faker, 1, 900);
  return {
    _id: symbol,
    name: `${faker.company.name()} ${faker.helpers.arrayElement(['Inc.', 'Corp.', 'plc', 'AG'])}`,
    exchange: faker.helpers.arrayElement(['NASDAQ', 'NYSE', 'LSE', 'XETRA']),
    price,
    prevClose: price,
    volume: Long.fromNumber(faker.number.int({ min: 0, max: 1_000_000 })),
    updatedAt: new Date(EPOCH),
    history: [price],
  };
}

const ticker: Scenario = {
  name: 'ticker',
  description:
    'stock quotes: a handful of familiar symbols updated many times a second among ~20k others',
  defaultMix: { insert: 5, update: 90, replace: 0, delete: 5 },
  initCount: 20_000,
  trackedFields: { price: 1 },
  initialDocument: (faker, n) =>
    quote(
      faker,
      n < FAMILIAR_SYMBOLS.length
        ? FAMILIAR_SYMBOLS[n]!
        : generatedSymbol(n - FAMILIAR_SYMBOLS.length),
    ),
  newDocument(ctx, taken) {
    // Symbols after the initial ones, partitioned by worker so two workers never insert the same.
    for (;;) {
      const n = 20_000 + ctx.sequence++ * ctx.workers + ctx.worker;
      const symbol = generatedSymbol(n);
      if (!taken(symbol)) return quote(ctx.faker, symbol);
    }
  },
  update(ctx, doc) {
    const price = Math.max(
      0.01,
      Math.round(
        (doc.price as number) * (1 + ctx.faker.number.float({ min: -0.02, max: 0.02 })) * 100,
      ) / 100,
    );
    const at = new Date(EPOCH + ctx.sequence++ * 250);
    return {
      update: {
        $set: { price, updatedAt: at },
        $inc: { volume: ctx.faker.number.int({ min: 1, max: 5000 }) },
        $push: { history: { $each: [price], $slice: -5 } },
      },
      apply: (d) => void (d.price = price),
    };
  },
  replacement: (ctx, doc) => {
    const { _id: _drop, ...fresh } = quote(ctx.faker, String(doc._id));
    return fresh;
  },
  pickUpdate: (ctx, docs) => {
    if (ctx.faker.number.int({ min: 1, max: 2 }) === 1) return undefined;
    const familiar = docs.filter((d) => FAMILIAR.has(String(d._id)));
    return familiar.length ? ctx.faker.helpers.arrayElement(familiar) : undefined;
  },
  pickDelete: (ctx, docs) => {
    const others = docs.filter((d) => !FAMILIAR.has(String(d._id)));
    return others.length ? ctx.faker.helpers.arrayElement(others) : undefined;
  },
};

// ---- sensor --------------------------------------------------------------------------------

function reading(faker: Faker, at: number): Document {
  return {
    _id: objectId(faker),
    deviceId: `dev-${faker.number.int({ min: 1, max: 200 }).toString().padStart(4, '0')}`,
    ts: new Date(at),
    temperature: faker.number.float({ min: -20, max: 45, fractionDigits: 2 }),
    humidity: faker.number.int({ min: 5, max: 100 }),
    battery: faker.number.float({ min: 0, max: 1, fractionDigits: 3 }),
    location: {
      type: 'Point',
      coordinates: [faker.location.longitude(), faker.location.latitude()],
    },
  };
}

const sensor: Scenario = {
  name: 'sensor',
  description: 'device readings with timestamps: insert-heavy, occasional calibration and expiry',
  defaultMix: { insert: 90, update: 5, replace: 0, delete: 5 },
  initCount: 1000,
  trackedFields: { deviceId: 1 },
  initialDocument: (faker, n) => reading(faker, EPOCH + n * 1000),
  newDocument: (ctx) =>
    reading(ctx.faker, EPOCH + 86_400_000 + (ctx.sequence++ * ctx.workers + ctx.worker) * 100),
  update: (ctx) => {
    const offset = ctx.faker.number.float({ min: -0.5, max: 0.5, fractionDigits: 2 });
    // The counter makes every update a change (MongoDB reports no event for a no-op update).
    return {
      update: { $set: { calibrated: true, offset }, $inc: { calibrations: 1 } },
      apply: () => {},
    };
  },
  replacement: (ctx) => {
    const { _id: _drop, ...fresh } = reading(ctx.faker, EPOCH);
    return fresh;
  },
};

export const SCENARIOS: Record<string, Scenario> = { bank, ticker, sensor };

export type BulkOperation = { type: OperationType; model: AnyBulkWriteOperation };
