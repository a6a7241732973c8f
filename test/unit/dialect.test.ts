// What each dialect sends, without a server: Kysely's DummyDriver compiles the writer's statements
// and the log hook records them. This is how the CrateDB path is pinned on machines without one.
import { describe, expect, it } from 'vitest';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
} from 'kysely';
import { convertEvent, type RowEvent } from '../../src/convert/event.js';
import { foldBatch } from '../../src/convert/fold.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import type { Dialect } from '../../src/target/dialect.js';
import { classifyTargetError } from '../../src/target/errors.js';
import { postgresDialect } from '../../src/target/postgres/dialect.js';
import { quoteIdent } from '../../src/target/sql.js';
import { TargetWriter, type AnyDb } from '../../src/target/writer.js';

function recordingDb(): { db: AnyDb; statements: string[] } {
  const statements: string[] = [];
  const db: AnyDb = new Kysely({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new DummyDriver(),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
    log: (event) => {
      if (event.level === 'query') statements.push(event.query.sql);
    },
  });
  return { db, statements };
}

function writerFor(dialect: Dialect) {
  const { db, statements } = recordingDb();
  const writer = new TargetWriter(db, dialect, {
    schema: dialect.defaultSchema,
    streamId: 's',
    onError: 'dlq',
    objectPolicy: 'dynamic',
    tableFor: (c) => c,
  });
  return { writer, statements };
}

const events = [
  {
    operationType: 'insert',
    ns: { db: 'd', coll: 'c' },
    documentKey: { _id: 1 },
    fullDocument: { _id: 1, 'a.b': 1 },
  },
  { operationType: 'delete', ns: { db: 'd', coll: 'c' }, documentKey: { _id: 2 } },
  { operationType: 'delete', ns: { db: 'd', coll: 'c' }, documentKey: { _id: 3 } },
];

describe('quoteIdent', () => {
  it('quotes and doubles embedded quotes', () => {
    expect(quoteIdent('orders')).toBe('"orders"');
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
  });
});

describe('DDL', () => {
  it('CrateDB: OBJECT with the chosen policy, no CREATE SCHEMA, quoted names', () => {
    const ddl = crateDialect.ddl('doc', 'my table', 'ignored');
    expect(ddl).toHaveLength(3);
    expect(ddl[2]).toMatch(
      /CREATE TABLE IF NOT EXISTS "doc"\."my table" \(\s+"oid" TEXT PRIMARY KEY,\s+"data" OBJECT\(IGNORED\)/,
    );
    expect(ddl.join('\n')).not.toMatch(/CREATE SCHEMA/);
    expect(ddl[1]).toMatch(/"event" TEXT NOT NULL INDEX OFF STORAGE WITH \(columnstore = false\)/);
  });

  it('PostgreSQL: schema, JSONB, checkpoints and dead letters', () => {
    const ddl = postgresDialect.ddl('public', 'orders', 'dynamic');
    expect(ddl[0]).toMatch(/CREATE SCHEMA IF NOT EXISTS "public"/);
    expect(ddl[3]).toMatch(/"data" JSONB NOT NULL/);
    expect(ddl.join('\n')).toMatch(/"relay_checkpoints"/);
    expect(ddl.join('\n')).toMatch(/"relay_dead_letters"/);
  });
});

describe('writer statements', () => {
  const checkpoint = { position: { startAfter: { _data: '82' } }, snapshot: null, eventTime: null };

  it('CrateDB: no transaction, upsert by primary key, deletes and reads as primary-key lookups', async () => {
    const { writer, statements } = writerFor(crateDialect);
    const rows = foldBatch(events.map((e) => convertEvent(e, crateDialect.objectKey) as RowEvent));
    await writer.write(rows, checkpoint);
    expect(statements.some((s) => /^(begin|savepoint)/i.test(s))).toBe(false);
    expect(statements).toContain(
      'insert into "doc"."c" ("oid", "data") values ($1, $2) on conflict ("oid") do update set "data" = "excluded"."data"',
    );
    expect(statements).toContain('delete from "doc"."c" where ("oid" = $1 or "oid" = $2)');
    expect(statements.at(-1)).toMatch(
      /^insert into "doc"\."relay_checkpoints" .* on conflict \("stream_id"\) do update/,
    );
  });

  it('PostgreSQL: one transaction, no savepoints until a row is refused, data cast to jsonb, deletes by IN', async () => {
    const { writer, statements } = writerFor(postgresDialect);
    const rows = foldBatch(
      events.map((e) => convertEvent(e, postgresDialect.objectKey) as RowEvent),
    );
    await writer.write(rows, checkpoint);
    expect(statements).not.toContain('SAVEPOINT relay_rows');
    expect(statements).toContain(
      'insert into "public"."c" ("oid", "data") values ($1, $2::jsonb) on conflict ("oid") do update set "data" = "excluded"."data"',
    );
    expect(statements).toContain('delete from "public"."c" where "oid" in ($1, $2)');
  });

  it('splits upserts to stay within 32767 parameters', async () => {
    const { writer, statements } = writerFor(postgresDialect);
    const many = Array.from({ length: 20_000 }, (_, i) => ({
      operationType: 'insert',
      ns: { db: 'd', coll: 'big' },
      documentKey: { _id: i },
      fullDocument: { _id: i },
    }));
    await writer.write(
      foldBatch(many.map((e) => convertEvent(e, postgresDialect.objectKey) as RowEvent)),
      null,
    );
    const inserts = statements.filter((s) => s.startsWith('insert into "public"."big"'));
    expect(inserts).toHaveLength(2);
    for (const insert of inserts)
      expect((insert.match(/\$/g) ?? []).length).toBeLessThanOrEqual(32767);
  });
});

describe('CrateDB statements stay primary-key lookups and under statement_max_length', () => {
  const STATEMENT_MAX_LENGTH = 262_144;
  const many = (n: number, op: 'insert' | 'delete' | 'update') =>
    Array.from({ length: n }, (_, i) => ({
      operationType: op,
      ns: { db: 'd', coll: 'big' },
      documentKey: { _id: i },
      ...(op === 'insert' ? { fullDocument: { _id: i, v: 'x' } } : {}),
      ...(op === 'update'
        ? { updateDescription: { updatedFields: { v: 1 }, removedFields: [], truncatedArrays: [] } }
        : {}),
    }));
  const write = async (n: number, op: 'insert' | 'delete' | 'update') => {
    const { writer, statements } = writerFor(crateDialect);
    await writer.write(
      foldBatch(many(n, op).map((e) => convertEvent(e, crateDialect.objectKey) as RowEvent)),
      null,
    );
    return statements.filter((s) => s.includes('"doc"."big"'));
  };
  const terms = (s: string) => (s.match(/"oid" = \$/g) ?? []).length;

  it('deletes name at most 1,000 keys a statement', async () => {
    const deletes = (await write(2500, 'delete')).filter((s) => s.startsWith('delete'));
    expect(deletes.map(terms)).toEqual([1000, 1000, 500]);
  });

  it('patch reads name at most 1,000 keys a statement', async () => {
    const reads = (await write(2500, 'update')).filter((s) => s.startsWith('select'));
    expect(reads.map(terms)).toEqual([1000, 1000, 500]);
  });

  it('upserts and dead letters stay far under statement_max_length', async () => {
    const inserts = (await write(20_000, 'insert')).filter((s) => s.startsWith('insert'));
    expect(inserts.length).toBeGreaterThan(1);
    for (const s of inserts) expect(s.length).toBeLessThan(STATEMENT_MAX_LENGTH / 2);
  });
});

describe('classifyTargetError', () => {
  it.each([
    [{ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' }, 'transient'],
    [
      { code: '57P01', message: 'terminating connection due to administrator command' },
      'transient',
    ],
    [{ code: '08006', message: 'connection failure' }, 'transient'],
    [new Error('Connection terminated unexpectedly'), 'transient'],
    [{ code: '42P01', message: 'relation "x" does not exist' }, 'fatal'],
    [{ code: '28P01', message: 'password authentication failed' }, 'fatal'],
    [{ code: '22P05', message: 'unsupported Unicode escape sequence' }, 'row'],
  ])('%o is %s', (error, kind) => {
    expect(classifyTargetError(error).kind).toBe(kind);
    expect(postgresDialect.classifyError(error).kind).toBe(kind);
  });
});

// CrateDB sends nearly everything as XX000 (`PGError.fromThrowable`); messages as its exceptions
// word them (shared/notes/cratedb.md, "Errors over the PostgreSQL wire protocol").
describe('CrateDB errors are classified by message as well as code', () => {
  const xx = (message: string) => ({ code: 'XX000', message });
  it.each([
    [
      xx('ShardNotAvailableException: [doc][0] primary shard is not active Timeout: [1m]'),
      'transient',
    ],
    [xx('UnavailableShardsException[[doc.t][2] primary shard is not active]'), 'transient'],
    [xx('NoShardAvailableActionException[No shard available for [doc.t]]'), 'transient'],
    [xx('ClusterBlockException[blocked by: [SERVICE_UNAVAILABLE/2/no master];]'), 'transient'],
    [xx('blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];'), 'transient'],
    [xx('blocked by: [FORBIDDEN/12/index read-only / allow delete (api)];'), 'transient'],
    [
      xx('NodeDisconnectedException[[node-2][10.0.0.2:4300][indices:crate/sql/job] disconnected]'),
      'transient',
    ],
    [xx('NodeNotConnectedException[[node-2][10.0.0.2:4300] Node not connected]'), 'transient'],
    [
      xx(
        'CircuitBreakingException[[query] Data too large, data for [collect: 0] would be larger than limit]',
      ),
      'transient',
    ],
    [
      xx(
        'rejected execution of org.elasticsearch.common.util.concurrent.TimedRunnable on EsThreadPoolExecutor',
      ),
      'transient',
    ],
    [xx('JobKilledException[Job killed. Participating node=node-2 disconnected.]'), 'transient'],
    [xx('Job killed by user'), 'transient'],
    [{ code: 'ECONNRESET', message: 'read ECONNRESET' }, 'transient'],
    [xx("MissingPrivilegeException[Missing 'DML' privilege for user 'relay']"), 'fatal'],
    [xx("Missing 'DQL' privilege for user 'relay'"), 'fatal'],
    [{ code: '42P01', message: "Relation 'doc.orders' unknown" }, 'fatal'],
    [xx("RelationUnknown[Relation 'doc.x' unknown]"), 'fatal'],
    [xx("SchemaUnknownException[Schema 'nope' unknown]"), 'fatal'],
    [xx("line 1:8: mismatched input 'FORM' expecting {<EOF>, ';'}"), 'fatal'],
    [{ code: '42601', message: "line 1:8: mismatched input 'FORM'" }, 'fatal'],
    [xx('Cannot cast object element `a` with value `x` to type `bigint`'), 'row'],
    [xx('Limit of total columns [1000] in table [doc.t] exceeded'), 'row'],
    [xx('Dynamic nested arrays are not supported'), 'row'],
  ])('%o is %s', (error, kind) => {
    expect(crateDialect.classifyError(error).kind).toBe(kind);
  });

  it('says what to do about a missing privilege or a dropped table', () => {
    expect(crateDialect.classifyError(xx("Missing 'DML' privilege for user 'r'")).message).toMatch(
      /GRANT DQL, DML, DDL/,
    );
    expect(
      crateDialect.classifyError({ code: '42P01', message: "Relation 'doc.t' unknown" }).message,
    ).toMatch(/dropped while the relay was running; start the relay again/);
  });
});
