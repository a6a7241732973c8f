// Comparing a collection with its table: every document converted exactly as the relay converts
// it, matched to its row by oid, in chunks bounded by count and bytes so memory stays bounded
// whatever the size of the collection or of its documents.
//
// Both sides cannot be merged in one sort order (MongoDB orders _ids by BSON type and value, the
// table orders oid text), so the check runs twice: MongoDB -> target finds missing and different
// rows by primary-key lookups; target -> MongoDB walks the table's oids (keyset pagination) and
// looks each up under every _id it can stand for, to find extra rows.
import { BSON, EJSON, Long, ObjectId, type Document } from 'bson';
import { sql } from 'kysely';
import type { MongoClient } from 'mongodb';
import {
  canonicalJson,
  isStoredObject,
  parseStoredJson,
  type StoredValue,
} from './convert/stored.js';
import { oidOf, rowJson } from './convert/value.js';
import type { Dialect } from './target/dialect.js';
import { tableRef } from './target/sql.js';
import type { AnyDb } from './target/writer.js';
import { GarbagePacer } from './memory.js';
import { READ_BSON } from './mongo/connect.js';

export interface VerifyOptions {
  database: string;
  collection: string;
  schema: string;
  table: string;
  /** How many oids of each kind the report names. */
  sample?: number;
  /** Documents compared at once: up to chunkSize of them, or until they reach chunkBytes. */
  chunkSize?: number;
  chunkBytes?: number;
}

export interface VerifyReport {
  source: string;
  target: string;
  sourceCount: number;
  targetCount: number;
  matching: number;
  missing: { count: number; first: string[] };
  extra: { count: number; first: string[] };
  different: { count: number; first: { oid: string; fields: string[] }[] };
  ok: boolean;
}

type Json = StoredValue | undefined;

/**
 * Dotted paths where `actual` differs from `expected`; key order and number spelling (`10` or
 * `10.0`, `1e+300` or its digits) do not matter, numbers compare by exact value.
 */
export function differingFields(expected: Json, actual: Json, prefix = '', limit = 5): string[] {
  const out: string[] = [];
  const walk = (e: Json, a: Json, path: string) => {
    if (out.length >= limit) return;
    if (isStoredObject(e) && isStoredObject(a)) {
      for (const key of new Set([...Object.keys(e), ...Object.keys(a)])) {
        walk(e[key], a[key], path ? `${path}.${key}` : key);
      }
    } else if (Array.isArray(e) && Array.isArray(a) && e.length === a.length) {
      e.forEach((item, i) => walk(item, a[i], `${path}.${i}`));
    } else if (typeof e === 'string' && typeof a === 'string') {
      if (e !== a) out.push(path || '(document)');
    } else if (canonicalJson(e) !== canonicalJson(a)) {
      out.push(path || '(document)');
    }
  };
  walk(expected, actual, prefix);
  return out;
}

/** The _id values an oid can stand for (DESIGN.md §1 in reverse). */
export function idCandidates(oid: string): unknown[] {
  const candidates: unknown[] = [oid];
  if (/^[0-9a-f]{24}$/.test(oid)) candidates.push(new ObjectId(oid));
  if (/^-?\d+$/.test(oid)) {
    const n = Number(oid);
    candidates.push(Number.isSafeInteger(n) ? n : Long.fromString(oid));
  } else if (/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(oid)) {
    candidates.push(Number(oid));
  }
  if (oid.startsWith('{') || oid.startsWith('[')) {
    try {
      candidates.push(EJSON.parse(oid, { relaxed: true }));
    } catch {
      // Not Extended JSON: only the string itself can match.
    }
  }
  return candidates;
}

export async function verify(
  client: MongoClient,
  db: AnyDb,
  dialect: Dialect,
  options: VerifyOptions,
): Promise<VerifyReport> {
  const sample = options.sample ?? 5;
  const chunkSize = options.chunkSize ?? 1000;
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  const garbage = new GarbagePacer(2 * chunkBytes);
  const collection = client.db(options.database).collection(options.collection);
  const report: VerifyReport = {
    source: `${options.database}.${options.collection}`,
    target: `${options.schema}.${options.table}`,
    sourceCount: 0,
    targetCount: 0,
    matching: 0,
    missing: { count: 0, first: [] },
    extra: { count: 0, first: [] },
    different: { count: 0, first: [] },
    ok: false,
  };
  await dialect.refresh(db, options.schema, options.table);

  const checkChunk = async (docs: Document[]) => {
    const expected = new Map(
      docs.map((doc) => [oidOf(doc._id), parseStoredJson(rowJson(doc, dialect.objectKey))]),
    );
    const { rows } = await sql<{ oid: string; data: unknown }>`
      SELECT "oid", "data" FROM ${tableRef(options.schema, options.table)}
      WHERE ${dialect.oidIn([...expected.keys()])}`.execute(db);
    const actual = new Map(rows.map((r) => [r.oid as string, parseStoredJson(r.data)]));
    for (const [oid, data] of expected) {
      if (!actual.has(oid)) {
        report.missing.count++;
        if (report.missing.first.length < sample) report.missing.first.push(oid);
        continue;
      }
      const fields = differingFields(data, actual.get(oid));
      if (fields.length === 0) {
        report.matching++;
      } else {
        report.different.count++;
        if (report.different.first.length < sample) report.different.first.push({ oid, fields });
      }
    }
  };

  let chunk: Document[] = [];
  let bytes = 0;
  for await (const doc of collection.find(
    {},
    { sort: { _id: 1 }, batchSize: chunkSize, ...READ_BSON },
  )) {
    report.sourceCount++;
    chunk.push(doc);
    bytes += BSON.calculateObjectSize(doc);
    if (chunk.length >= chunkSize || bytes >= chunkBytes) {
      await checkChunk(chunk);
      garbage.done(bytes);
      chunk = [];
      bytes = 0;
    }
  }
  if (chunk.length) await checkChunk(chunk);

  let after: string | null = null;
  for (;;) {
    const from = tableRef(options.schema, options.table);
    const { rows } = await (
      after === null
        ? sql<{ oid: string }>`SELECT "oid" FROM ${from} ORDER BY "oid" LIMIT ${chunkSize}`
        : sql<{
            oid: string;
          }>`SELECT "oid" FROM ${from} WHERE "oid" > ${after} ORDER BY "oid" LIMIT ${chunkSize}`
    ).execute(db);
    const oids = rows.map((r) => r.oid);
    if (oids.length === 0) break;
    report.targetCount += oids.length;
    after = oids.at(-1)!;
    const found = new Set<string>();
    const candidates = oids.flatMap(idCandidates);
    for await (const doc of collection.find({ _id: { $in: candidates } } as Document, {
      projection: { _id: 1 },
    })) {
      found.add(oidOf(doc._id));
    }
    for (const oid of oids) {
      if (found.has(oid)) continue;
      report.extra.count++;
      if (report.extra.first.length < sample) report.extra.first.push(oid);
    }
  }
  report.ok =
    report.missing.count === 0 && report.extra.count === 0 && report.different.count === 0;
  return report;
}

export function reportText(report: VerifyReport): string {
  const lines = [
    `verify ${report.source} -> ${report.target}: ${report.sourceCount} documents, ${report.targetCount} rows: ` +
      `${report.matching} matching, ${report.missing.count} missing, ${report.extra.count} extra, ${report.different.count} different`,
  ];
  if (report.missing.count)
    lines.push(`  missing in the table: ${report.missing.first.join(', ')}${more(report.missing)}`);
  if (report.extra.count)
    lines.push(`  extra in the table: ${report.extra.first.join(', ')}${more(report.extra)}`);
  if (report.different.count) {
    lines.push(
      `  different: ${report.different.first.map((d) => `${d.oid} (${d.fields.join(', ')})`).join(', ')}${more(report.different)}`,
    );
  }
  return lines.join('\n');
}

function more(part: { count: number; first: unknown[] }): string {
  return part.count > part.first.length ? `, … (${part.count - part.first.length} more)` : '';
}
