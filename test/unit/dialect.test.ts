// What each dialect sends, without a server: Kysely's DummyDriver compiles the writer's statements
// and the log hook records them, and a scripted connection answers them (rows an INSERT …
// RETURNING names, row counts). This is how the CrateDB path is pinned on machines without one.
import { describe, expect, it } from 'vitest';
import {
  DummyDriver,
  Kysely,
  type CompiledQuery,
  type DatabaseConnection,
  type QueryResult,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
} from 'kysely';
import type { Document } from 'bson';
import { convertEvent, type RowEvent } from '../../src/convert/event.js';
import { foldBatch } from '../../src/convert/fold.js';
import { crateDialect } from '../../src/target/cratedb/dialect.js';
import type { Dialect } from '../../src/target/dialect.js';
import { classifyTargetError } from '../../src/target/errors.js';
import { postgresDialect } from '../../src/target/postgres/dialect.js';
import { quoteIdent } from '../../src/target/sql.js';
import { TargetWriter, type AnyDb } from '../../src/target/writer.js';

/**
 * How the scripted target treats rows: `skipped` oids a multi-row INSERT leaves out without an
 * error (CrateDB's `continueOnErrors`), `refused` ones a one-row INSERT fails with that message,
 * `silent` ones a one-row INSERT also leaves out without an error (a swallowed ClassCastException);
 * `deadLetterSkips` how many multi- and one-row dead-letter inserts write nothing.
 */
interface Script {
  skipped?: Set<string>;
  refused?: Map<string, string>;
  silent?: Set<string>;
  deadLetterSkips?: number;
  checkpointRows?: bigint;
  /** The stored `data` (JSON text) a primary-key lookup returns for an oid, if any. */
  stored?: (oid: string) => string | undefined;
}

class ScriptedConnection implements DatabaseConnection {
  constructor(private readonly script: Script) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const text = query.sql;
    const params = query.parameters as unknown[];
    if (/^\s*INSERT INTO .* RETURNING "oid"$/s.test(text)) {
      const oids = params.filter((_, i) => i % 2 === 0) as string[];
      if (oids.length === 1) {
        const message = this.script.refused?.get(oids[0]!);
        if (message) throw Object.assign(new Error(message), { code: 'XX000' });
        if (this.script.silent?.has(oids[0]!)) return { rows: [] };
        return { rows: [{ oid: oids[0] }] as R[] };
      }
      const written = oids.filter((oid) => !this.script.skipped?.has(oid));
      return { rows: written.map((oid) => ({ oid })) as R[] };
    }
    if (text.includes('"relay_dead_letters"') && text.includes('returning "id"')) {
      if ((this.script.deadLetterSkips ?? 0) > 0) {
        this.script.deadLetterSkips!--;
        return { rows: [] };
      }
      return { rows: params.filter((_, i) => i % 8 === 0).map((id) => ({ id })) as R[] };
    }
    if (/^\s*SELECT "oid", "data" FROM/.test(text)) {
      const found = (params as string[]).map((oid) => ({ oid, data: this.script.stored?.(oid) }));
      return { rows: found.filter((r) => r.data !== undefined) as R[] };
    }
    if (text.includes('"relay_checkpoints"')) {
      return { rows: [], numAffectedRows: this.script.checkpointRows ?? 1n };
    }
    return { rows: [] };
  }

  // eslint-disable-next-line require-yield -- the writer never streams
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('not used');
  }
}

class ScriptedDriver extends DummyDriver {
  constructor(private readonly script: Script) {
    super();
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    return new ScriptedConnection(this.script);
  }
}

function recordingDb(script: Script = {}): { db: AnyDb; statements: string[] } {
  const statements: string[] = [];
  const db: AnyDb = new Kysely({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => new ScriptedDriver(script),
      createIntrospector: (k) => new PostgresIntrospector(k),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
    log: (event) => {
      if (event.level === 'query') statements.push(event.query.sql.replace(/\s+/g, ' ').trim());
    },
  });
  return { db, statements };
}

function writerFor(dialect: Dialect, script: Script = {}, lookupBytes?: number) {
  const { db, statements } = recordingDb(script);
  const writer = new TargetWriter(db, dialect, {
    schema: dialect.defaultSchema,
    streamId: 's',
    onError: 'dlq',
    objectPolicy: 'dynamic',
    tableFor: (c) => c,
    lookupBytes,
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
      'INSERT INTO "doc"."c" ("oid", "data") VALUES ($1, $2) ON CONFLICT ("oid") DO UPDATE SET "data" = excluded."data" RETURNING "oid"',
    );
    expect(statements).toContain('DELETE FROM "doc"."c" WHERE ("oid" = $1 OR "oid" = $2)');
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
      'INSERT INTO "public"."c" ("oid", "data") VALUES ($1, $2::jsonb) ON CONFLICT ("oid") DO UPDATE SET "data" = excluded."data" RETURNING "oid"',
    );
    expect(statements).toContain('DELETE FROM "public"."c" WHERE "oid" IN ($1, $2)');
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
    const inserts = statements.filter((s) => s.startsWith('INSERT INTO "public"."big"'));
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
    const deletes = (await write(2500, 'delete')).filter((s) => s.startsWith('DELETE'));
    expect(deletes.map(terms)).toEqual([1000, 1000, 500]);
  });

  it('patch reads name at most 1,000 keys a statement', async () => {
    const reads = (await write(2500, 'update')).filter((s) => s.startsWith('SELECT'));
    // The first names one key: the writer has not seen a stored row's size yet (none found).
    expect(reads.map(terms)).toEqual([1, 1000, 1000, 499]);
  });

  it('upserts and dead letters stay far under statement_max_length', async () => {
    const inserts = (await write(20_000, 'insert')).filter((s) => s.startsWith('INSERT'));
    expect(inserts.length).toBeGreaterThan(1);
    for (const s of inserts) expect(s.length).toBeLessThan(STATEMENT_MAX_LENGTH / 2);
  });
});

describe('rows read back for patches are bounded by bytes', () => {
  const ROW = 1_000_000;
  /** Keys a lookup names, rows an upsert writes (two parameters each). */
  const rowsNamed = (s: string) =>
    (s.match(/\$\d+/g) ?? []).length / (s.startsWith('INSERT') ? 2 : 1);
  // About 1 MB of text in strings CrateDB indexes (at most 32766 bytes each).
  const body = JSON.stringify(Array.from({ length: ROW / 1000 }, () => 'x'.repeat(998)));
  const stored = (oid: string) => `{"_id":${oid},"v":0,"body":${body}}`;
  const patches = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      operationType: 'update',
      ns: { db: 'd', coll: 'big' },
      documentKey: { _id: i },
      updateDescription: { updatedFields: { v: 1 }, removedFields: [], truncatedArrays: [] },
    }));

  it.each([crateDialect, postgresDialect])(
    '$name: about lookupBytes of rows are read, then written, then the next',
    async (dialect) => {
      const { writer, statements } = writerFor(dialect, { stored }, 3 * ROW);
      const rows = foldBatch(
        patches(10).map((e) => convertEvent(e, dialect.objectKey) as RowEvent),
      );
      const result = await writer.write(rows, null);
      expect(result.upserted).toBe(10);
      const steps = statements
        .filter((s) => /^(SELECT|INSERT) .*"big"/.test(s))
        .map((s) => `${s.startsWith('SELECT') ? 'read' : 'write'} ${rowsNamed(s)}`);
      // One key first (no size seen yet), then as many as 3 MB of rows of the size seen hold:
      // each group is at most 3 MB plus one row, and written before the next is read.
      expect(steps).toEqual([
        'read 1',
        'read 2',
        'write 3',
        'read 3',
        'write 3',
        'read 3',
        'write 3',
        'read 1',
        'write 1',
      ]);
    },
  );
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
    // What a relay at start waits for, or gives up on at once (PostgreSQL errcodes.txt: 57P03
    // cannot_connect_now, 28000 invalid_authorization_specification, 3D000 invalid_catalog_name).
    [{ code: '57P03', message: 'the database system is starting up' }, 'transient'],
    [{ code: 'EAI_AGAIN', message: 'getaddrinfo EAI_AGAIN target' }, 'transient'],
    [new Error('timeout exceeded when trying to connect'), 'transient'],
    [{ code: '28000', message: 'no pg_hba.conf entry for host' }, 'fatal'],
    [{ code: '3D000', message: 'database "x" does not exist' }, 'fatal'],
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

// Issue #11.1: a row counts as written only when the target says it wrote it.
describe('rows a multi-row INSERT skips without an error', () => {
  const three = ['a', 'b', 'c'].map((id) => ({
    operationType: 'insert',
    ns: { db: 'd', coll: 'c' },
    documentKey: { _id: id },
    fullDocument: { _id: id, v: 1 },
  }));
  const checkpoint = { position: { startAfter: { _data: '82' } }, snapshot: null, eventTime: null };
  const rowsOf = (events: Document[]) =>
    foldBatch(events.map((e) => convertEvent(e, crateDialect.objectKey) as RowEvent));

  it("are written again alone and dead-lettered with CrateDB's reason", async () => {
    const reason = 'Cannot cast object element `v` with value `x` to type `bigint`';
    const { writer, statements } = writerFor(crateDialect, {
      skipped: new Set(['b']),
      refused: new Map([['b', reason]]),
    });
    const result = await writer.write(rowsOf(three), checkpoint);
    expect(result.upserted).toBe(2);
    expect(result.deadLetters).toMatchObject([{ oid: 'b', error: reason }]);
    const order = statements.map((s) =>
      /relay_dead_letters/.test(s) ? 'dead' : /relay_checkpoints/.test(s) ? 'checkpoint' : s,
    );
    expect(order.indexOf('dead')).toBeLessThan(order.indexOf('checkpoint'));
  });

  it('a row not written alone either is dead-lettered with a sentence that says so', async () => {
    const { writer } = writerFor(crateDialect, {
      skipped: new Set(['c']),
      silent: new Set(['c']),
    });
    const result = await writer.write(rowsOf(three), checkpoint);
    expect(result.upserted).toBe(2);
    expect(result.deadLetters).toMatchObject([
      { oid: 'c', error: expect.stringMatching(/did not write this row and reported no error/) },
    ]);
  });

  it('a dead letter that cannot be stored stops the write before its checkpoint', async () => {
    const { writer, statements } = writerFor(crateDialect, {
      skipped: new Set(['a']),
      silent: new Set(['a']),
      deadLetterSkips: 2,
    });
    await expect(writer.write(rowsOf(three), checkpoint)).rejects.toThrow(
      /dead letter of d\.c document a .* could not be stored .* stopping before the checkpoint/,
    );
    expect(statements.some((s) => s.includes('relay_checkpoints'))).toBe(false);
  });

  it('a checkpoint upsert with a row count other than 1 stops the relay', async () => {
    const { writer } = writerFor(crateDialect, { checkpointRows: 0n });
    await expect(writer.write(rowsOf(three), checkpoint)).rejects.toThrow(
      /checkpoint of s was not stored .*row count 0, not 1/,
    );
  });
});

// Issue #11.7: `DELETE FROM t` without a key works on the last refreshed state.
describe('--on-drop truncate', () => {
  it('refreshes a CrateDB table before deleting its rows', async () => {
    const { writer, statements } = writerFor(crateDialect);
    await writer.clear('c', 'truncate');
    const refresh = statements.indexOf('REFRESH TABLE "doc"."c"');
    expect(refresh).toBeGreaterThanOrEqual(0);
    expect(statements.indexOf('DELETE FROM "doc"."c"')).toBeGreaterThan(refresh);
  });
});

// Issue #11.6: collection names that are not table names.
describe('table names', () => {
  it.each([
    ['orders', 'orders'],
    ['fs.files', 'fs_files'],
    ['a\\b/c*d?e"f<g>h|i', 'a_b_c_d_e_f_g_h_i'],
    ['with space,comma#hash', 'with_space_comma_hash'],
    ['-lead', '_lead'],
    ['+lead', '_lead'],
    ['mid-dle+', 'mid-dle+'],
    ['Ünïcode_ok', 'Ünïcode_ok'],
  ])('CrateDB: %s -> %s', (collection, table) => {
    expect(crateDialect.tableName(collection)).toBe(table);
  });

  it('PostgreSQL keeps the name, quoted as one identifier', async () => {
    expect(postgresDialect.tableName('fs.files')).toBe('fs.files');
    const { writer, statements } = writerFor(postgresDialect);
    const writerDotted = new TargetWriter(writer.db, postgresDialect, {
      ...writer.options,
      tableFor: (c) => postgresDialect.tableName(c),
    });
    await writerDotted.write(
      foldBatch([
        convertEvent(
          {
            operationType: 'insert',
            ns: { db: 'd', coll: 'fs.files' },
            documentKey: { _id: 1 },
            fullDocument: { _id: 1 },
          },
          postgresDialect.objectKey,
        ) as RowEvent,
      ]),
      null,
    );
    expect(statements.some((s) => s.startsWith('INSERT INTO "public"."fs.files"'))).toBe(true);
  });

  it('two collections on one CrateDB table are an error at start-up', async () => {
    const { writer } = writerFor(crateDialect);
    const mapped = new TargetWriter(writer.db, crateDialect, {
      ...writer.options,
      tableFor: (c) => crateDialect.tableName(c),
    });
    await expect(mapped.prepare(['fs.files', 'fs_files'])).rejects.toThrow(
      /collections "fs.files" and "fs_files" would both be written to table "doc"."fs_files"/,
    );
  });
});
