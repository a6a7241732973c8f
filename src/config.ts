// Flags and environment variables (commander has already merged them, flags winning) ->
// validated settings. Every problem is one sentence naming the option.
import { EJSON, type Document } from 'bson';
import type { FullDocumentMode } from './mongo/source.js';
import type { OnDrop, SnapshotMode } from './relay/pipeline.js';
import type { DialectName, ObjectPolicy } from './target/dialect.js';
import type { DeadLetterSettings } from './commands/dead-letters.js';
import { ConfigError } from './errors.js';
import type { WorkloadOptions } from './workload/runner.js';
import { OPERATION_TYPES, SCENARIOS, type Mix, type OperationType } from './workload/scenarios.js';

export interface SourceSettings {
  mongodbUrl: string;
  database: string;
  /** null: the whole database. */
  collections: string[] | null;
  filter: Document[];
}

export interface TargetSettings {
  targetUrl: string;
  dialect: DialectName | 'auto';
  schema: string | null;
  table: string | null;
}

export interface RelaySettings extends SourceSettings, TargetSettings {
  snapshot: SnapshotMode;
  fullDocument: FullDocumentMode;
  batchSize: number;
  /**
   * The most bytes of documents held at once: the batch being written and the one read ahead
   * (each change event's BSON size), or the rows read back to apply patches.
   */
  batchBytes: number;
  batchWaitMs: number;
  objectPolicy: ObjectPolicy;
  onError: 'dlq' | 'fail';
  onDrop: OnDrop;
  streamId: string | null;
  progressIntervalMs: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Port of /metrics and /healthz; null: no HTTP server. */
  metricsPort: number | null;
  /** How long an unreachable MongoDB is waited for at start; null until stopped. */
  mongodbStartTimeoutMs: number | null;
  /** How long an unreachable target is waited for at start; null until stopped. */
  targetStartTimeoutMs: number | null;
}

type Raw = Record<string, unknown>;

export function required(raw: Raw, key: string, flag: string, env: string): string {
  const value = raw[key];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(`${flag} (or ${env}) is required`);
  }
  return value;
}

export function positiveInt(raw: Raw, key: string, flag: string): number {
  const value = Number(raw[key]);
  if (!Number.isInteger(value) || value < 1) {
    throw new ConfigError(
      `${flag} must be a whole number of at least 1, not "${String(raw[key])}"`,
    );
  }
  return value;
}

/**
 * Most events in one batch. A batch is held in memory and written before its checkpoint; beyond
 * this, batches only grow memory and the work redone after a fault, while statements are split
 * to the target's limits anyway.
 */
export const MAX_BATCH_SIZE = 100_000;

function batchSize(raw: Raw): number {
  const value = positiveInt(raw, 'batchSize', '--batch-size');
  if (value > MAX_BATCH_SIZE) {
    throw new ConfigError(
      `--batch-size must be at most ${MAX_BATCH_SIZE} (a batch is held in memory until its checkpoint; statements are split to the target's limits anyway), not ${value}`,
    );
  }
  return value;
}

function nonNegativeInt(raw: Raw, key: string, flag: string): number {
  const value = Number(raw[key]);
  if (!Number.isInteger(value) || value < 0) {
    throw new ConfigError(
      `${flag} must be a whole number of at least 0, not "${String(raw[key])}"`,
    );
  }
  return value;
}

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  kib: 2 ** 10,
  mb: 1e6,
  mib: 2 ** 20,
  gb: 1e9,
  gib: 2 ** 30,
};

/** A size: plain bytes, or with a unit such as `64MiB`, `500KB`, `1GiB`. */
export function byteSize(raw: Raw, key: string, flag: string): number {
  const text = String(raw[key]).trim();
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text);
  const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  const bytes = match && unit ? Math.floor(Number(match[1]) * unit) : NaN;
  if (!(bytes >= 1)) {
    throw new ConfigError(
      `${flag} must be a size such as 64MiB, 500KB or 1048576 (bytes), not "${text}"`,
    );
  }
  return bytes;
}

function port(value: unknown, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new ConfigError(`${flag} must be a TCP port (0 to 65535), not "${String(value)}"`);
  }
  return n;
}

/** `--filter`: a JSON (Extended JSON) array of pipeline stages, or a single stage. */
export function parseFilter(text: unknown): Document[] {
  if (text === undefined || text === null || text === '') return [];
  let parsed: unknown;
  try {
    parsed = EJSON.parse(String(text), { relaxed: false });
  } catch (error) {
    throw new ConfigError(`--filter is not valid JSON: ${(error as Error).message}`);
  }
  const stages = Array.isArray(parsed) ? parsed : [parsed];
  for (const stage of stages) {
    const keys = stage && typeof stage === 'object' ? Object.keys(stage) : [];
    if (keys.length !== 1 || !keys[0]!.startsWith('$')) {
      throw new ConfigError(
        `--filter must be pipeline stages such as [{"$match": {"operationType": "insert"}}], not ${JSON.stringify(stage)}`,
      );
    }
  }
  return stages as Document[];
}

export function sourceSettings(raw: Raw): SourceSettings {
  const collections = (raw.collection as string[] | undefined)?.filter((c) => c.length > 0) ?? [];
  return {
    mongodbUrl: required(raw, 'mongodbUrl', '--mongodb-url', 'MONGODB_URL'),
    database: required(raw, 'database', '--database', 'MONGODB_DATABASE'),
    collections: collections.length ? [...new Set(collections)] : null,
    filter: parseFilter(raw.filter),
  };
}

export function targetSettings(raw: Raw): TargetSettings {
  return {
    targetUrl: required(raw, 'targetUrl', '--target-url', 'TARGET_URL'),
    dialect: (raw.dialect as DialectName | 'auto' | undefined) ?? 'auto',
    schema: (raw.schema as string | undefined) || null,
    table: (raw.table as string | undefined) || null,
  };
}

export function relaySettings(raw: Raw): RelaySettings {
  const source = sourceSettings(raw);
  const target = targetSettings(raw);
  if (target.table && source.collections?.length !== 1) {
    throw new ConfigError(
      '--table names the table of a single collection: give exactly one --collection with it',
    );
  }
  const fullDocument = raw.fullDocument as FullDocumentMode;
  return {
    ...source,
    ...target,
    snapshot: raw.snapshot as SnapshotMode,
    fullDocument,
    batchSize: batchSize(raw),
    batchBytes: byteSize(raw, 'batchBytes', '--batch-bytes'),
    batchWaitMs: nonNegativeInt(raw, 'batchWaitMs', '--batch-wait-ms'),
    objectPolicy: raw.objectPolicy as ObjectPolicy,
    onError: raw.onError as 'dlq' | 'fail',
    onDrop: raw.onDrop as OnDrop,
    streamId: (raw.streamId as string | undefined) || null,
    progressIntervalMs: positiveInt(raw, 'progressInterval', '--progress-interval') * 1000,
    logLevel: raw.logLevel as RelaySettings['logLevel'],
    metricsPort: raw.metricsPort === undefined ? null : port(raw.metricsPort, '--metrics-port'),
    mongodbStartTimeoutMs:
      raw.mongodbStartTimeout === undefined
        ? null
        : parseDuration(String(raw.mongodbStartTimeout), '--mongodb-start-timeout'),
    targetStartTimeoutMs:
      raw.targetStartTimeout === undefined
        ? null
        : parseDuration(String(raw.targetStartTimeout), '--target-start-timeout'),
  };
}

/** The checkpoint key when --stream-id is not given: source namespace and target table. */
export function defaultStreamId(settings: RelaySettings, schema: string): string {
  const source = settings.collections ? settings.collections.join(',') : '*';
  const table =
    settings.table ?? (settings.collections?.length === 1 ? settings.collections[0] : '*');
  return `${settings.database}.${source}->${schema}.${table}`;
}

export interface TailSettings extends SourceSettings {
  format: 'ejson' | 'pretty';
  operations: string[] | null;
  fullDocument: FullDocumentMode;
  limit: number | null;
}

export function tailSettings(raw: Raw): TailSettings {
  const source = sourceSettings(raw);
  const operations = (raw.operation as string[] | undefined)?.filter((o) => o) ?? [];
  return {
    ...source,
    format: raw.format as 'ejson' | 'pretty',
    operations: operations.length ? operations : null,
    fullDocument: raw.fullDocument as FullDocumentMode,
    limit: raw.limit === undefined ? null : positiveInt(raw, 'limit', '--limit'),
  };
}

export interface ReplaySettings extends TargetSettings {
  file: string;
  batchSize: number;
  /** A batch closes at half of it, and rows read back for patches are read in such groups. */
  batchBytes: number;
  objectPolicy: ObjectPolicy;
  onError: 'dlq' | 'fail';
  streamId: string;
  logLevel: RelaySettings['logLevel'];
}

export function replaySettings(file: string, raw: Raw): ReplaySettings {
  return {
    ...targetSettings(raw),
    file,
    batchSize: batchSize(raw),
    batchBytes: byteSize(raw, 'batchBytes', '--batch-bytes'),
    objectPolicy: raw.objectPolicy as ObjectPolicy,
    onError: raw.onError as 'dlq' | 'fail',
    streamId: (raw.streamId as string | undefined) || `replay:${file}`,
    logLevel: raw.logLevel as RelaySettings['logLevel'],
  };
}

export interface WorkloadSettings extends WorkloadOptions {
  mongodbUrl: string;
}

/** `30s`, `5m`, `1h`, `500ms`, or plain seconds. */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match)
    throw new ConfigError(`${flag} must be a duration such as 30s, 5m or 1h, not "${text}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[
    (match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'
  ];
  const ms = Number(match[1]) * unit;
  if (ms <= 0) throw new ConfigError(`${flag} must be longer than zero, not "${text}"`);
  return ms;
}

/** `insert=40,update=40,replace=10,delete=10`; types left out get 0. */
export function parseMix(text: string): Mix {
  const mix: Mix = { insert: 0, update: 0, replace: 0, delete: 0 };
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^(insert|update|replace|delete)=(\d+)$/.exec(part);
    if (!match) {
      throw new ConfigError(
        `--mix must be like insert=40,update=40,replace=10,delete=10, and "${part}" is not`,
      );
    }
    mix[match[1] as OperationType] = Number(match[2]);
  }
  if (OPERATION_TYPES.every((t) => mix[t] === 0))
    throw new ConfigError('--mix gives every operation type a weight of 0');
  return mix;
}

export function workloadSettings(raw: Raw): WorkloadSettings {
  const source = sourceSettings(raw);
  if (source.collections?.length !== 1) {
    throw new ConfigError(
      '--collection (or MONGODB_COLLECTION) is required: the one collection the workload writes',
    );
  }
  const scenarioName = String(raw.scenario);
  const scenario = SCENARIOS[scenarioName];
  if (!scenario) {
    throw new ConfigError(
      `--scenario must be one of ${Object.keys(SCENARIOS).join(', ')}, not "${scenarioName}"`,
    );
  }
  if (raw.ops !== undefined && raw.duration !== undefined) {
    throw new ConfigError('give --ops or --duration, not both');
  }
  const seed = Number(raw.seed);
  if (!Number.isInteger(seed))
    throw new ConfigError(`--seed must be a whole number, not "${String(raw.seed)}"`);
  return {
    mongodbUrl: source.mongodbUrl,
    database: source.database,
    collection: source.collections[0]!,
    scenario,
    ops: raw.ops === undefined ? null : positiveInt(raw, 'ops', '--ops'),
    durationMs:
      raw.duration === undefined ? null : parseDuration(String(raw.duration), '--duration'),
    rate: nonNegativeInt(raw, 'rate', '--rate'),
    concurrency: positiveInt(raw, 'concurrency', '--concurrency'),
    mix: raw.mix === undefined ? scenario.defaultMix : parseMix(String(raw.mix)),
    seed,
    reset: raw.reset === true,
    init: raw.init === true,
  };
}

export interface VerifySettings extends TargetSettings {
  mongodbUrl: string;
  database: string;
  collection: string;
  json: boolean;
  waitMs: number;
  /** Documents are compared in chunks of half of it (their rows read back are the other half). */
  batchBytes: number;
}

export function verifySettings(raw: Raw): VerifySettings {
  const source = sourceSettings(raw);
  if (source.collections?.length !== 1) {
    throw new ConfigError(
      '--collection (or MONGODB_COLLECTION) is required: the one collection to compare',
    );
  }
  return {
    ...targetSettings(raw),
    mongodbUrl: source.mongodbUrl,
    database: source.database,
    collection: source.collections[0]!,
    json: raw.json === true,
    waitMs: raw.wait === undefined ? 0 : parseDuration(String(raw.wait), '--wait'),
    batchBytes: byteSize(raw, 'batchBytes', '--batch-bytes'),
  };
}

export interface StatusSettings extends TargetSettings {
  json: boolean;
}

export function statusSettings(raw: Raw): StatusSettings {
  return { ...targetSettings(raw), json: raw.json === true };
}

export function deadLetterSettings(action: string, raw: Raw): DeadLetterSettings {
  if (action !== 'list' && action !== 'retry' && action !== 'purge') {
    throw new ConfigError(`dead-letters takes list, retry or purge, not "${action}"`);
  }
  const ids = ((raw.id as string[] | undefined) ?? []).filter(Boolean);
  return {
    ...targetSettings(raw),
    action,
    streamId: (raw.streamId as string | undefined) || null,
    ns: (raw.ns as string | undefined) || null,
    ids,
    all: raw.all === true,
    limit:
      raw.limit !== undefined
        ? positiveInt(raw, 'limit', '--limit')
        : action === 'list'
          ? 100
          : null,
    json: raw.json === true,
    batchBytes: byteSize(raw, 'batchBytes', '--batch-bytes'),
  };
}
