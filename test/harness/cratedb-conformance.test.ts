// Conformance of the CrateDB harness, written against the `pg` driver only, so that it also runs
// against a real CrateDB (TEST_TARGET_URL=postgresql://crate@host:5432/doc) and any difference
// shows up here. Each behaviour names where CrateDB defines it (crate/crate source at 5.10.x,
// class or test names, and docs/ files). Tables live in a schema of their own per run.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CrateHarness } from '../support/cratedb/index.js';

let harness: CrateHarness | null = null;
let url: string;
let client: pg.Client;
let version: string;
const schema = `harness_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  const external = process.env.TEST_TARGET_URL;
  if (external) {
    const probe = new pg.Client({ connectionString: external });
    await probe.connect();
    const { rows } = await probe.query<{ v: string }>('SELECT version() AS v');
    await probe.end();
    // TEST_TARGET_URL may name a PostgreSQL for the relay's suite: then test the harness.
    if (/crate/i.test(rows[0]!.v)) url = external;
  }
  if (!url) {
    harness = await CrateHarness.start();
    url = harness.url();
  }
  client = await connect();
  const { rows } = await client.query<{ v: string }>('SELECT version() AS v');
  version = /CrateDB (\d+\.\d+\.\d+)/.exec(rows[0]!.v)![1]!;
});

afterAll(async () => {
  if (client) {
    const { rows } = await client.query<{ table_name: string }>(
      'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
      [schema],
    );
    for (const { table_name } of rows) {
      await client.query(`DROP TABLE IF EXISTS "${schema}"."${table_name}"`);
    }
    await client.end();
  }
  await harness?.close();
});

async function connect(database?: string): Promise<pg.Client> {
  const target = new URL(url);
  if (database) target.pathname = `/${database}`;
  const c = new pg.Client({ connectionString: target.toString() });
  await c.connect();
  return c;
}

const major = () => Number(version.split('.')[0]);
const atLeast = (maj: number, min: number) => {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > maj || (a === maj && b >= min);
};

let tableCounter = 0;
/**
 * A new table `"schema"."tN"` (oid TEXT PRIMARY KEY, data OBJECT(policy) …) without periodic
 * refresh, so visibility is decided by REFRESH TABLE and primary-key lookups alone.
 */
async function newTable(columns = `"data" OBJECT(DYNAMIC)`, extra = ''): Promise<string> {
  const name = `"${schema}"."t${++tableCounter}"`;
  await client.query(
    `CREATE TABLE ${name} ("oid" TEXT PRIMARY KEY, ${columns}) WITH (refresh_interval = 0)${extra}`,
  );
  return name;
}

async function q<T extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  params: unknown[] = [],
): Promise<pg.QueryResult<T>> {
  return client.query<T>(text, params);
}

/** The error a statement fails with: SQLSTATE and message. */
async function failure(
  text: string,
  params: unknown[] = [],
): Promise<{ code: string; message: string }> {
  try {
    await client.query(text, params);
  } catch (error) {
    const e = error as { code?: string; message: string };
    return { code: e.code ?? '', message: e.message };
  }
  throw new Error(`expected an error from: ${text}`);
}

/** Inserts documents (JSON text) as rows `oid` → `data`; returns the reported row count. */
async function insert(table: string, docs: Record<string, unknown>): Promise<number> {
  const entries = Object.entries(docs);
  const values = entries.map((_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(', ');
  const params = entries.flatMap(([oid, data]) => [oid, JSON.stringify(data)]);
  const result = await q(`INSERT INTO ${table} ("oid", "data") VALUES ${values}`, params);
  return result.rowCount ?? -1;
}

async function dataOf(table: string, oid: string): Promise<unknown> {
  const { rows } = await q(`SELECT "data" FROM ${table} WHERE "oid" = $1`, [oid]);
  return rows[0]?.data;
}

async function columnTypes(table: string): Promise<Record<string, string>> {
  const name = table.split('.')[1]!.replaceAll('"', '');
  const { rows } = await q<{ column_name: string; data_type: string }>(
    `SELECT column_name, data_type FROM information_schema.columns
     WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
    [schema, name],
  );
  return Object.fromEntries(rows.map((r) => [r.column_name, r.data_type]));
}

describe('wire and statements', () => {
  // `SysVersionFunction` / docs/general/builtins/scalar-functions.rst `version()`.
  it('names itself CrateDB x.y.z in version()', async () => {
    const { rows } = await q('SELECT version() AS version');
    expect(rows[0]!.version).toMatch(/^CrateDB \d+\.\d+\.\d+/);
  });

  // docs/interfaces/postgres.rst: the database of the connection URL is the default schema.
  it('uses the database of the URL as the default schema', async () => {
    const table = await newTable();
    await insert(table, { a: {} });
    const other = await connect(schema);
    try {
      const name = table.split('.')[1]!;
      const { rows } = await other.query(`SELECT oid FROM ${name} WHERE oid = 'a'`);
      expect(rows).toEqual([{ oid: 'a' }]);
    } finally {
      await other.end();
    }
  });

  // `PGTypes`: OBJECT is sent as json (OID 114), TEXT as varchar (1043), BIGINT as int8 (20).
  it('describes object columns as json and sends their JSON text', async () => {
    const table = await newTable();
    await insert(table, { a: { n: 1, s: 'x', o: { deep: true } } });
    const result = await q(
      `SELECT "oid", "data", "data"['n'] AS n FROM ${table} WHERE "oid" = 'a'`,
    );
    expect(result.fields.map((f) => f.dataTypeID)).toEqual([1043, 114, 20]);
    expect(result.rows[0]).toEqual({ oid: 'a', data: { n: 1, s: 'x', o: { deep: true } }, n: '1' });
  });

  // `InsertFromValues` answers with the number of written rows; `DeleteById`, `Get`.
  it('reports INSERT, DELETE and SELECT row counts in the command tags', async () => {
    const table = await newTable();
    const ins = await q(`INSERT INTO ${table} (oid, data) VALUES ($1, $2), ($3, $4)`, [
      'a',
      '{}',
      'b',
      '{}',
    ]);
    expect([ins.command, ins.rowCount]).toEqual(['INSERT', 2]);
    const sel = await q(`SELECT oid FROM ${table} WHERE oid = $1 OR oid = $2`, ['a', 'b']);
    expect([sel.command, sel.rowCount]).toEqual(['SELECT', 2]);
    const del = await q(`DELETE FROM ${table} WHERE oid = $1 OR oid = $2 OR oid = $3`, [
      'a',
      'b',
      'missing',
    ]);
    expect([del.command, del.rowCount]).toEqual(['DELETE', 2]);
  });

  // docs/sql/statements/create-table.rst: column policies, typed sub-columns, INDEX OFF,
  // STORAGE WITH (columnstore = false); IF NOT EXISTS leaves an existing table alone.
  it('creates tables with object policies, typed sub-columns and unindexed text', async () => {
    const name = `"${schema}"."ddl"`;
    const ddl = `CREATE TABLE IF NOT EXISTS ${name} (
      "oid" TEXT PRIMARY KEY,
      "data" OBJECT(DYNAMIC) AS ("opened" TIMESTAMP WITH TIME ZONE, "details" OBJECT(IGNORED)),
      "strict" OBJECT(STRICT) AS ("n" BIGINT),
      "ignored" OBJECT(IGNORED),
      "note" TEXT INDEX OFF STORAGE WITH (columnstore = false)
    )`;
    await q(ddl);
    await q(ddl);
    expect(await columnTypes(name)).toEqual({
      oid: 'text',
      data: 'object',
      "data['opened']": 'timestamp with time zone',
      "data['details']": 'object',
      strict: 'object',
      "strict['n']": 'bigint',
      ignored: 'object',
      note: 'text',
    });
  });

  // `TableElementsAnalyzer.visitAddColumnDefinition`, docs/sql/statements/alter-table.rst:
  // several sub-columns in one statement, missing parents become objects.
  it('adds one or several sub-columns with ALTER TABLE ADD COLUMN', async () => {
    const table = await newTable();
    await q(
      `ALTER TABLE ${table} ADD COLUMN "data"['a']['b'] TIMESTAMP WITH TIME ZONE, ADD COLUMN "data"['c'] DOUBLE PRECISION`,
    );
    const types = await columnTypes(table);
    expect(types).toMatchObject({
      "data['a']": 'object',
      "data['a']['b']": 'timestamp with time zone',
      "data['c']": 'double precision',
    });
    await insert(table, { x: { a: { b: 1700000000123 }, c: 2 } });
    expect(await dataOf(table, 'x')).toEqual({ a: { b: 1700000000123 }, c: 2 });
    const again = await failure(`ALTER TABLE ${table} ADD COLUMN "data"['c'] DOUBLE PRECISION`);
    expect(again.message).toMatch(/already has a column named data\['c'\]/);
  });

  // `InsertAnalyzer.verifyOnConflictTargets`; docs/sql/statements/insert.rst ON CONFLICT.
  it('upserts with ON CONFLICT (pk) DO UPDATE SET … = excluded.…, and RETURNING', async () => {
    const table = await newTable();
    await insert(table, { a: { v: 1 } });
    const result = await q(
      `INSERT INTO ${table} (oid, data) VALUES ($1, $2), ($3, $4)
       ON CONFLICT (oid) DO UPDATE SET data = excluded.data RETURNING oid`,
      ['a', '{"v": 2}', 'b', '{"v": 3}'],
    );
    expect(result.rowCount).toBe(2);
    expect(result.rows.map((r) => r.oid).sort()).toEqual(['a', 'b']);
    expect(await dataOf(table, 'a')).toEqual({ v: 2 });
    const nothing = await q(
      `INSERT INTO ${table} (oid, data) VALUES ($1, $2) ON CONFLICT (oid) DO NOTHING`,
      ['a', '{"v": 9}'],
    );
    expect(nothing.rowCount).toBe(0);
    expect(await dataOf(table, 'a')).toEqual({ v: 2 });
  });

  // docs/sql/statements/update.rst: UPDATE by primary key (UpdateById) sees the row at once;
  // RETURNING gives the updated rows.
  it('updates a sub-column by primary key, with RETURNING', async () => {
    const table = await newTable();
    await insert(table, { a: { balance: 1 } });
    const result = await q(
      `UPDATE ${table} SET data['balance'] = -12345 WHERE oid = $1 RETURNING oid, data['balance'] AS b`,
      ['a'],
    );
    expect([result.command, result.rowCount]).toEqual(['UPDATE', 1]);
    expect(result.rows).toEqual([{ oid: 'a', b: '-12345' }]);
    expect(await dataOf(table, 'a')).toEqual({ balance: -12345 });
  });

  // `InsertAnalyzer.verifyOnConflictTargets`: the conflict target must be the primary key.
  it('refuses a conflict target that is not the primary key', async () => {
    const table = await newTable(`"data" OBJECT(DYNAMIC), "other" TEXT`);
    const error = await failure(
      `INSERT INTO ${table} (oid, data, other) VALUES ('a', '{}', 'x') ON CONFLICT (other) DO UPDATE SET data = excluded.data`,
    );
    expect(error.code).toBe('XX000');
    expect(error.message).toMatch(
      /Conflict target \(\[other\]\) did not match the primary key columns \(\[oid\]\)/,
    );
  });

  // `SQLExceptions.esToCrateException` (DuplicateKeyException, 23505) for one row; among several
  // the duplicate is skipped (`testInsertWithPrimaryKeyMultiValuesFailing`: row count 1).
  it('reports a duplicate primary key for one row and skips it among several', async () => {
    const table = await newTable();
    await insert(table, { a: {} });
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ('a', '{}')`);
    expect(error.code).toBe('23505');
    expect(error.message).toBe('A document with the same primary key exists already');
    expect(await insert(table, { a: { x: 1 }, b: {} })).toBe(1);
    expect(await dataOf(table, 'a')).toEqual({});
  });

  // `testInsertWithNotNullConstraintViolation`, `testInsertWithNotNull1LevelNestedColumn`.
  it('refuses NULL and missing values of NOT NULL columns, also nested ones', async () => {
    const table = await newTable(
      `"data" OBJECT(DYNAMIC) AS ("level1" TEXT NOT NULL), "note" TEXT NOT NULL`,
    );
    const missing = await failure(
      `INSERT INTO ${table} (oid, data) VALUES ('a', '{"level1": "x"}')`,
    );
    expect(missing.message).toMatch(/"note" must not be null/);
    const nested = await failure(
      `INSERT INTO ${table} (oid, data, note) VALUES ('a', '{"other": "x"}', 'n')`,
    );
    expect(nested.message).toMatch(/"data\['level1'\]" must not be null/);
  });

  // docs/interfaces/postgres.rst "Transactions": BEGIN and COMMIT are accepted and ignored.
  it('accepts BEGIN and COMMIT and writes at once', async () => {
    const table = await newTable();
    await q('BEGIN');
    await insert(table, { a: {} });
    expect(await dataOf(table, 'a')).toEqual({});
    await q('COMMIT');
  });

  // `PostgresWireProtocol.handleSimpleQuery` parses every statement of a simple query first
  // (a syntax error anywhere runs none), then runs them in turn.
  it('runs several statements of one simple query in turn', async () => {
    const table = await newTable();
    const results = (await q(
      `INSERT INTO ${table} (oid, data) VALUES ('a', '{}'); SELECT oid FROM ${table} WHERE oid = 'a';`,
    )) as unknown as pg.QueryResult[];
    expect(results.map((r) => r.command)).toEqual(['INSERT', 'SELECT']);
    expect(results[1]!.rows).toEqual([{ oid: 'a' }]);
    await expect(q(`INSERT INTO ${table} (oid, data) VALUES ('b', '{}'); SELEC 1`)).rejects.toThrow(
      /mismatched input 'SELEC'/,
    );
    expect(await dataOf(table, 'b')).toBeUndefined();
  });

  // SqlBaseParser.g4 has no ROLLBACK: CrateDB's parser refuses it.
  it('does not parse ROLLBACK', async () => {
    const error = await failure('ROLLBACK');
    expect(error.message).toMatch(/^line 1:1: mismatched input 'ROLLBACK'/);
  });

  // `PGError.fromThrowable`: RelationUnknown → 42P01 "Relation '…' unknown".
  it('answers 42P01 for an unknown table', async () => {
    const error = await failure(`SELECT * FROM "${schema}"."nope"`);
    expect(error.code).toBe('42P01');
    expect(error.message).toBe(`Relation '${schema}.nope' unknown`);
  });

  // `SqlParser`/`ParsingException` ("line L:C: …"); `PGError.fromThrowable` makes it XX000
  // before 6.4 (`SQLParseException`), 42601 from 6.4.
  it('reports syntax errors as CrateDB`s parser words them', async () => {
    const error = await failure('SELEC 1');
    expect(error.code).toBe(atLeast(6, 4) ? '42601' : 'XX000');
    expect(error.message).toMatch(/^line 1:1: mismatched input 'SELEC' expecting/);
  });

  // `RelationName` / `IndexName.validate`: no dots, no special characters in table names.
  it('refuses table names CrateDB cannot store', async () => {
    for (const bad of ['fs.files', 'a b', 'a#b', 'a*b', '-a']) {
      const error = await failure(`CREATE TABLE "${schema}"."${bad}" (oid TEXT PRIMARY KEY)`);
      expect(error.code, bad).toBe('XX000');
      expect(error.message, bad).toMatch(/is invalid|must not contain/);
    }
  });

  // docs/general/information-schema.rst: sub-columns are listed as data['x'] with their type.
  it('lists tables and sub-columns in information_schema', async () => {
    const table = await newTable();
    await insert(table, { a: { n: 1, o: { s: 'x' } } });
    const name = table.split('.')[1]!.replaceAll('"', '');
    const tables = await q(
      'SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2',
      [schema, name],
    );
    expect(Number(tables.rows[0]!.n)).toBe(1);
    expect(await columnTypes(table)).toEqual({
      oid: 'text',
      data: 'object',
      "data['n']": 'bigint',
      "data['o']": 'object',
      "data['o']['s']": 'text',
    });
  });

  // `Schemas.findRelation`: an unknown schema is its own error (XX000, `SchemaUnknownException`);
  // an unqualified unknown table is named as written.
  it('tells an unknown schema from an unknown table', async () => {
    const schemaError = await failure(`SELECT * FROM "${schema}_none"."t"`);
    expect(schemaError.code).toBe('XX000');
    expect(schemaError.message).toMatch(new RegExp(`^Schema '${schema}_none' unknown`));
    const table = await newTable();
    const other = await connect(schema);
    try {
      const error = await other
        .query('SELECT * FROM nope')
        .catch((e: { code: string; message: string }) => e);
      expect(error).toMatchObject({ code: '42P01', message: "Relation 'nope' unknown" });
      expect(table).toBeTruthy();
    } finally {
      await other.end();
    }
  });

  // `DoubleType.encodeAsUTF8Text` (Double.toString) and `TimestampZType` ("YYYY-MM-dd HH:mm:ss.SSS+00").
  it('sends doubles and timestamps in CrateDB`s text formats', async () => {
    const table = await newTable(`"data" OBJECT(DYNAMIC) AS ("at" TIMESTAMP WITH TIME ZONE)`);
    await client.query(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      '{"d": 10.0, "big": 1e20, "small": 0.0001, "at": 1700000000123}',
    ]);
    const raw = (value: string) => value;
    const { rows } = await client.query({
      text: `SELECT data['d'] AS d, data['big'] AS big, data['small'] AS small, data['at'] AS at FROM ${table} WHERE oid = 'a'`,
      types: { getTypeParser: () => raw },
    });
    expect(rows[0]).toEqual({
      d: '10.0',
      big: '1.0E20',
      small: '1.0E-4',
      at: '2023-11-14 22:13:20.123+00',
    });
  });

  // `FormatCodes.fromBuffer` reads the count of Bind's format codes as a short: the `pg` driver
  // writes 32768 as -32768, and `new FormatCode[-32768]` fails (NegativeArraySizeException).
  // The relay must stay at 32767 parameters.
  it('refuses more than 32767 parameters', async () => {
    const params = Array.from({ length: 32_768 }, (_, i) => String(i));
    const error = await failure('SELECT $1 AS a', params);
    expect(error).toEqual({ code: 'XX000', message: '-32768' });
    expect((await q('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
  });

  // `Sessions.STATEMENT_MAX_LENGTH` (6.0, release notes 6.0.0): 262,144 characters of SQL text.
  it('limits the statement length from 6.0', async () => {
    const text = `SELECT '${'x'.repeat(262_144)}' AS s`;
    if (major() >= 6) {
      const error = await failure(text);
      expect(error.message).toBe(
        `Statement exceeds \`statement_max_length\` (262144 allowed, ${text.length} provided). Try replacing inline values with parameter placeholders (\`?\`)`,
      );
    } else {
      expect((await q(text)).rows[0]!.s).toHaveLength(262_144);
    }
  });
  // LengthFunction.java: octet_length is the bytes of the UTF-8 text, an INTEGER, NULL for NULL;
  // a scalar of the select list, it reads a column stored without index or column store too.
  // `relay dead-letters` pages with it, after the last (created_at, id) of the page before, the
  // time a parameter the driver sends as text, cast to a timestamp.
  it('answers octet_length of unindexed text, in pages after a timestamp and key', async () => {
    const table = await newTable(
      `"t" TEXT INDEX OFF STORAGE WITH (columnstore = false), "at" TIMESTAMP WITH TIME ZONE`,
    );
    const [first, second] = [new Date('2026-01-02T03:04:05.678Z'), new Date('2026-01-03')];
    await q(
      `INSERT INTO ${table} ("oid", "t", "at") VALUES ($1, $2, $3), ($4, $5, $6), ($7, $8, $9), ($10, $11, $12)`,
      ['a', 'x', first, 'b', 'héllo', first, 'c', null, first, 'd', 'yy', second],
    );
    await q(`REFRESH TABLE ${table}`);
    const { rows } = await q(
      `SELECT "oid", octet_length("t") AS n FROM ${table}
       WHERE "at" > CAST($1 AS TIMESTAMP WITH TIME ZONE)
         OR ("at" = CAST($1 AS TIMESTAMP WITH TIME ZONE) AND "oid" > $2)
       ORDER BY "at", "oid" LIMIT 2`,
      [first, 'a'],
    );
    expect(rows).toEqual([
      { oid: 'b', n: 6 },
      { oid: 'c', n: null },
    ]);
  });
});

describe('visibility', () => {
  // docs/general/dql/refresh.rst; `EqualityExtractor` makes `pk = a OR pk = b` a Get plan that
  // reads unrefreshed rows; every other read is a search of the last refreshed state.
  it('shows new rows to primary-key lookups at once and to searches after REFRESH TABLE', async () => {
    const table = await newTable();
    await insert(table, { a: { v: 1 }, b: { v: 2 } });
    const byKey = await q(`SELECT oid FROM ${table} WHERE oid = $1 OR oid = $2`, ['a', 'b']);
    expect(byKey.rowCount).toBe(2);
    const count = await q(`SELECT count(*) AS n FROM ${table}`);
    expect(Number(count.rows[0]!.n)).toBe(0);
    const search = await q(`SELECT oid FROM ${table} WHERE data['v'] = 1`);
    expect(search.rowCount).toBe(0);
    await q(`REFRESH TABLE ${table}`);
    expect(Number((await q(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)).toBe(2);
    expect((await q(`SELECT oid FROM ${table} WHERE data['v'] = 1`)).rows).toEqual([{ oid: 'a' }]);
  });

  // docs/sql/statements/create-table.rst `refresh_interval`: 1000 ms unless set.
  it('refreshes periodically when the table does not turn it off', async () => {
    const name = `"${schema}"."periodic"`;
    await q(`CREATE TABLE ${name} (oid TEXT PRIMARY KEY, data OBJECT(DYNAMIC))`);
    await insert(name, { a: {} });
    const deadline = Date.now() + 5000;
    let n = 0;
    while (Date.now() < deadline && n === 0) {
      await new Promise((r) => setTimeout(r, 200));
      n = Number((await q(`SELECT count(*) AS n FROM ${name}`)).rows[0]!.n);
    }
    expect(n).toBe(1);
  });

  // A DELETE that is not by primary key works on the last refreshed state (a search).
  it('deletes by other predicates only what a search sees', async () => {
    const table = await newTable();
    await insert(table, { a: { k: 'x' } });
    await q(`REFRESH TABLE ${table}`);
    await insert(table, { b: { k: 'x' } });
    const del = await q(`DELETE FROM ${table} WHERE data['k'] = 'x'`);
    expect(del.rowCount).toBe(1);
    expect(await dataOf(table, 'b')).toEqual({ k: 'x' });
  });

  // `EqualityExtractor.MAX_ITERATIONS = 10_000`: a longer OR list is a search, which does not see
  // unrefreshed rows.
  it('falls back to a search above 9,999 primary-key terms', async () => {
    const table = await newTable();
    await insert(table, { a: {} });
    const terms = 10_000;
    const where = Array.from({ length: terms }, (_, i) => `oid = $${i + 1}`).join(' OR ');
    const params = ['a', ...Array.from({ length: terms - 1 }, (_, i) => `m${i}`)];
    const result = await q(`SELECT oid FROM ${table} WHERE ${where}`, params);
    expect(result.rowCount).toBe(0);
    const small = Array.from({ length: 100 }, (_, i) => `oid = $${i + 1}`).join(' OR ');
    const found = await q(`SELECT oid FROM ${table} WHERE ${small}`, params.slice(0, 100));
    expect(found.rowCount).toBe(1);
  });

  // `SqlParser.invokeParser` (test `testStackOverflowStatement`, 12,000 terms).
  it('cannot parse 12,000 OR terms', async () => {
    const table = await newTable();
    const where = Array.from({ length: 12_000 }, (_, i) => `oid = $${i + 1}`).join(' OR ');
    const params = Array.from({ length: 12_000 }, (_, i) => `m${i}`);
    const error = await failure(`SELECT oid FROM ${table} WHERE ${where}`, params);
    expect(error.message).toBe('line 1:1: statement is too large (stack overflow while parsing)');
  });
});

describe('typing of dynamic sub-columns', () => {
  // `DynamicIndexer.guessType` (`DataTypes.guessType` + `upcast`) on Jackson's reading of JSON.
  it('types a new sub-column by its first value', async () => {
    const table = await newTable();
    await client.query(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      '{"i": 10, "d": 10.0, "e": 1e3, "s": "x", "b": true, "o": {"k": 1}, "a": [1, 2], "sa": ["x"]}',
    ]);
    expect(await columnTypes(table)).toEqual({
      oid: 'text',
      data: 'object',
      "data['i']": 'bigint',
      "data['d']": 'double precision',
      "data['e']": 'double precision',
      "data['s']": 'text',
      "data['b']": 'boolean',
      "data['o']": 'object',
      "data['o']['k']": 'bigint',
      "data['a']": 'bigint_array',
      "data['sa']": 'text_array',
    });
  });

  // `ObjectType` writes doubles with Jackson (`10.0`), longs as integers.
  it('returns doubles as doubles and integers as integers in the JSON text', async () => {
    const table = await newTable();
    await client.query(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      '{"i": 10, "d": 10.0}',
    ]);
    const { rows } = await q(`SELECT data::TEXT AS t FROM ${table} WHERE oid = 'a'`);
    expect(rows[0]!.t).toBe('{"i":10,"d":10.0}');
  });
});

describe('lenient casts into existing sub-columns', () => {
  // `InsertFromValues.cast` → `ObjectType.implicitCast` → each type's `implicitCast`.
  it('casts values into the existing sub-column types without an error', async () => {
    const table = await newTable();
    await insert(table, {
      seed: { big: 1, text: 'x', text2: 'x', text3: 'x', obj: { k: 1 }, arr: [], flag: true },
    });
    await insert(table, {
      a: { big: 1.5, text: 42, text2: true, text3: { k: 'v' }, obj: '{"k": 2}', arr: {}, flag: 0 },
    });
    expect(await dataOf(table, 'a')).toEqual({
      big: 1,
      text: '42',
      text2: 't',
      text3: '{"k":"v"}',
      obj: { k: 2 },
      arr: [],
      flag: false,
    });
    await insert(table, { b: { big: '42' } });
    expect(await dataOf(table, 'b')).toEqual({ big: 42 });
  });

  // `ConversionException`: only a value without a cast fails, the whole statement.
  it('fails only where no cast exists, with CrateDB`s message', async () => {
    const table = await newTable();
    await insert(table, { seed: { a: 1 } });
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2), ($3, $4)`, [
      'x',
      '{"a": "asdf"}',
      'y',
      '{"a": 2}',
    ]);
    expect(error).toEqual({
      code: 'XX000',
      message: 'Cannot cast object element `a` with value `asdf` to type `bigint`',
    });
    expect(await dataOf(table, 'y')).toBeUndefined();
  });
  // `ObjectType.convert` wraps a failure at any depth at each level, so the outermost key is named,
  // with its value as Java prints it (`ConversionException.forObjectChild`).
  it('names the outermost key when a nested value has no cast', async () => {
    const table = await newTable();
    await insert(table, { seed: { o: { n: 1 } } });
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'x',
      '{"o": {"n": "x", "m": [1, 2]}}',
    ]);
    expect(error.message).toBe(
      'Cannot cast object element `o` with value `{n=x, m=[1, 2]}` to type `object`',
    );
  });
});

describe('arrays of objects', () => {
  // docs/general/information-schema.rst (`information array(object as (population long, …))`
  // lists `information | object_array`, `information['population'] | bigint`): a child of an
  // object array is listed with the type of one element's value (`Reference.valueType`; only
  // reads see `bigint_array`, `TableInfo.getReadType`). New children are typed as any new
  // sub-column (`IndexerTest.test_schema_update_on_object_arrays_uses_most_specific_type`).
  it('lists an object array and its children with the element types', async () => {
    const table = await newTable();
    await insert(table, { a: { items: [{ price: 10, name: 'x' }, { price: 11 }] } });
    expect(await columnTypes(table)).toMatchObject({
      "data['items']": 'object_array',
      "data['items']['price']": 'bigint',
      "data['items']['name']": 'text',
    });
  });

  // `ArrayType.implicitCast` casts each element with `ObjectType.convert`, as lenient as for a
  // plain sub-column: 10.5 into the BIGINT child is 10, "42" is 42, without an error.
  it('casts values inside array elements leniently into the children', async () => {
    const table = await newTable();
    await insert(table, { seed: { items: [{ price: 10 }] } });
    await q(`INSERT INTO ${table} ("oid", "data") VALUES ($1, $2)`, [
      'b',
      '{"items": [{"price": 10.5}, {"price": "42"}]}',
    ]);
    expect(await dataOf(table, 'b')).toEqual({ items: [{ price: 10 }, { price: 42 }] });
  });

  // `ArrayMapperITest.testDroppedColumnsWithinArraysOfObjects` (`alter table t add column
  // xs['y'] text` on `xs array(object …)`) and `AlterTableAddColumnAnalyzerTest
  // .test_add_parent_and_child_columns_within_one_statement` (`add column obj['arr']
  // array(object(dynamic)), add column obj['arr']['id'] integer`): children are declared with
  // the element type, also under an object array added by the same statement.
  it('declares children of object arrays with ALTER TABLE ADD COLUMN', async () => {
    const table = await newTable();
    await q(
      `ALTER TABLE ${table} ADD COLUMN "data"['items'] ARRAY(OBJECT(DYNAMIC)), ADD COLUMN "data"['items']['price'] DOUBLE PRECISION`,
    );
    await insert(table, { seed: { old: [{ n: 1 }] } });
    await q(`ALTER TABLE ${table} ADD COLUMN "data"['old']['m'] DOUBLE PRECISION`);
    expect(await columnTypes(table)).toMatchObject({
      "data['items']": 'object_array',
      "data['items']['price']": 'double precision',
      "data['old']['m']": 'double precision',
    });
    await q(`INSERT INTO ${table} ("oid", "data") VALUES ($1, $2)`, [
      'a',
      '{"items": [{"price": 10}, {"price": 10.5}], "old": [{"n": 2, "m": 2.5}]}',
    ]);
    expect(await dataOf(table, 'a')).toEqual({
      items: [{ price: 10 }, { price: 10.5 }],
      old: [{ n: 2, m: 2.5 }],
    });
  });
});

describe('rows the shard refuses', () => {
  // `InsertFromValues` (`continueOnErrors = rows.size() > 1`, `numSuccessfulWrites()`), test
  // `testInsertWithPrimaryKeyMultiValuesFailing`: failing rows are dropped without an error.
  it('drops failing rows of a multi-row INSERT and counts only the written ones', async () => {
    const table = await newTable();
    const count = await insert(table, {
      ok1: { n: 1 },
      bad: { 'a.b': 1 },
      ok2: { n: 2 },
    });
    expect(count).toBe(2);
    expect(await dataOf(table, 'bad')).toBeUndefined();
    expect(await dataOf(table, 'ok2')).toEqual({ n: 2 });
  });

  // Same, with RETURNING: only the written rows come back.
  it('returns only written rows from INSERT … RETURNING', async () => {
    const table = await newTable();
    const result = await q(
      `INSERT INTO ${table} (oid, data) VALUES ($1, $2), ($3, $4) RETURNING oid`,
      ['ok', '{"n": 1}', 'bad', '{"x\\ty": 1}'],
    );
    expect(result.rows).toEqual([{ oid: 'ok' }]);
    expect(result.rowCount).toBe(1);
  });

  // `ColumnIdent.validateObjectKey`: `.`, `[`, tab, CR, LF refused; `]`, `_`, `$`, spaces allowed.
  it('applies CrateDB`s key rules to new sub-columns', async () => {
    const table = await newTable();
    for (const [key, message] of [
      ['a.b', '"a.b" contains a dot'],
      ['a[b', '"a[b" conflicts with subscript pattern, square brackets are not allowed'],
      ['a\tb', '"a\tb" contains illegal whitespace character'],
      ['a\nb', '"a\nb" contains illegal whitespace character'],
      ['a\rb', '"a\rb" contains illegal whitespace character'],
    ]) {
      const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
        'k',
        JSON.stringify({ [key!]: 1 }),
      ]);
      expect(error.message, JSON.stringify(key)).toBe(message);
    }
    const ok = { 'a]b': 1, _x: 2, $y: 3, 'with space': 4, 'q"uote': 5 };
    expect(await insert(table, { fine: ok })).toBe(1);
    expect(await dataOf(table, 'fine')).toEqual(ok);
  });

  // `DocTableInfo.checkTotalColumnsLimit` (`index.mapping.total_fields.limit` = 1000): every
  // nested path counts.
  it('refuses a row that would take the table past 1000 columns', async () => {
    const table = await newTable();
    const wide = Object.fromEntries(Array.from({ length: 999 }, (_, i) => [`k${i}`, i]));
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'w',
      JSON.stringify(wide),
    ]);
    expect(error.message).toMatch(/^Limit of total columns \[1000\] in table \[.*\] exceeded$/);
    const fits = Object.fromEntries(Array.from({ length: 998 }, (_, i) => [`k${i}`, i]));
    expect(await insert(table, { w: fits })).toBe(1);
  });

  // Lucene `IndexWriter` refuses terms over 32766 UTF-8 bytes (`StringIndexer` has no guard);
  // `INDEX OFF STORAGE WITH (columnstore = false)` lifts it for a declared column.
  it('refuses indexed strings over 32766 bytes, not unindexed ones', async () => {
    const table = await newTable(
      `"data" OBJECT(DYNAMIC), "note" TEXT INDEX OFF STORAGE WITH (columnstore = false)`,
    );
    const long = 'x'.repeat(32767);
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      JSON.stringify({ s: long }),
    ]);
    expect(error.message).toMatch(/immense term/);
    expect(await insert(table, { b: { s: 'x'.repeat(32766) } })).toBe(1);
    await q(`INSERT INTO ${table} (oid, data, note) VALUES ($1, $2, $3)`, ['c', '{}', long]);
    const { rows } = await q(`SELECT note FROM ${table} WHERE oid = 'c'`);
    expect(rows[0]!.note).toHaveLength(32767);
  });

  // `DynamicIndexer.throwOnNestedArray` ("Dynamic nested arrays are not supported") before 6.0.
  it('refuses dynamic nested arrays before 6.0', async () => {
    const table = await newTable();
    const text = JSON.stringify({ n: [[1], [2]] });
    if (major() < 6) {
      const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, ['a', text]);
      expect(error.message).toBe('Dynamic nested arrays are not supported');
    } else {
      expect(
        (await q(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, ['a', text])).rowCount,
      ).toBe(1);
    }
  });

  // `DataTypes.typeFromList` → `DataType.merge`: element types must convert to the highest one.
  it('refuses arrays whose element types do not merge', async () => {
    const table = await newTable();
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      JSON.stringify({ m: [1, { x: 1 }] }),
    ]);
    expect(error.message).toBe("'integer' is not convertible to 'object'");
    expect(await insert(table, { b: { m: [1, 2.5] } })).toBe(1);
    expect(await columnTypes(table)).toMatchObject({ "data['m']": 'double precision_array' });
  });

  // `InsertFromValues.mixedArgumentTypesFailure`: a ClassCastException on the shard is swallowed
  // even for one row (a string merged into a numeric array type, cratedb-toolkit#286).
  it('reports row count 0 without an error for a string in a numeric array', async () => {
    const table = await newTable();
    const result = await q(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      JSON.stringify({ m: [1, 'a'] }),
    ]);
    expect(result.rowCount).toBe(0);
    expect(await dataOf(table, 'a')).toBeUndefined();
  });

  // `ObjectIndexer.addNewColumns`: strict objects refuse unknown keys.
  it('refuses unknown keys in strict objects and keeps anything in ignored ones', async () => {
    const table = await newTable(`"data" OBJECT(STRICT) AS ("n" BIGINT), "free" OBJECT(IGNORED)`);
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      '{"n": 1, "x": 2}',
    ]);
    expect(error.message).toBe('Cannot add column `x` to strict object `data`');
    await q(`INSERT INTO ${table} (oid, data, free) VALUES ($1, $2, $3)`, [
      'b',
      '{"n": 1}',
      '{"a.b": [1, "x", {"c": []}]}',
    ]);
    const { rows } = await q(`SELECT free FROM ${table} WHERE oid = 'b'`);
    expect(rows[0]!.free).toEqual({ 'a.b': [1, 'x', { c: [] }] });
  });

  // `DocTableInfo.checkObjectDepthLimit` (`index.mapping.depth.limit`, 100, enforced again from
  // 6.0, release notes 6.0.0); 5.10 registers the setting but does not check it.
  it('limits the depth of new sub-columns to 100 from 6.0', async () => {
    const table = await newTable();
    const nest = (depth: number): Record<string, unknown> => {
      let doc: Record<string, unknown> = { leaf: 1 };
      for (let i = 1; i < depth; i++) doc = { [`l${i}`]: doc };
      return doc;
    };
    const deep = JSON.stringify(nest(101));
    if (major() >= 6) {
      const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, ['a', deep]);
      expect(error.message).toMatch(/^Limit of max column depth \[100\] in table \[.*\] exceeded$/);
    } else {
      expect(
        (await q(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, ['a', deep])).rowCount,
      ).toBe(1);
    }
    expect(
      (
        await q(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
          'b',
          JSON.stringify(nest(100)),
        ])
      ).rowCount,
    ).toBe(1);
  });

  // `Indexer` verifies CHECK constraints per row on the shard ("Failed CONSTRAINT … for values"),
  // so a multi-row INSERT drops the failing row. SqlBaseParser.g4: CHECK comes with CREATE TABLE
  // or ADD COLUMN; ALTER TABLE … DROP CONSTRAINT removes it; there is no ADD CONSTRAINT.
  it('verifies CHECK constraints per row, as a refused row', async () => {
    const table = await newTable(
      `"data" OBJECT(DYNAMIC) AS ("n" BIGINT), CONSTRAINT n_small CHECK (data['n'] < 10)`,
    );
    const add = await failure(`ALTER TABLE ${table} ADD CONSTRAINT other CHECK (data['n'] > 0)`);
    expect(add.message).toMatch(/^line 1:\d+: extraneous input 'CONSTRAINT'/);
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ('a', '{"n": 20}')`);
    expect(error.code).toBe('XX000');
    expect(error.message).toMatch(/^Failed CONSTRAINT n_small CHECK \(.*\) for values: \[/);
    expect(await insert(table, { b: { n: 1 }, c: { n: 30 } })).toBe(1);
    expect(await dataOf(table, 'c')).toBeUndefined();
    await q(`ALTER TABLE ${table} DROP CONSTRAINT n_small`);
    expect(await insert(table, { c: { n: 30 } })).toBe(1);
  });

  // `DataTypes.guessType`: Jackson reads integers beyond int64 as BigInteger, which has no type.
  it('cannot type an integer beyond int64', async () => {
    const table = await newTable();
    const error = await failure(`INSERT INTO ${table} (oid, data) VALUES ($1, $2)`, [
      'a',
      '{"n": 92233720368547758080}',
    ]);
    expect(error.message).toBe('Cannot detect the type of the value: 92233720368547758080');
  });
});

describe('faults (harness only)', () => {
  let h: CrateHarness;
  let c: pg.Client;

  beforeAll(async () => {
    h = await CrateHarness.start({ refreshIntervalMs: 50 });
    c = new pg.Client({ connectionString: h.url() });
    await c.connect();
    await c.query('CREATE TABLE t (oid TEXT PRIMARY KEY, data OBJECT)');
  });

  afterAll(async () => {
    await c?.end().catch(() => {});
    await h?.close();
  });

  it('fails the next N statements with a transient CrateDB error (XX000)', async () => {
    h.failNext(2);
    for (let i = 0; i < 2; i++) {
      const error = await c.query('SELECT 1').catch((e: { code: string; message: string }) => e);
      expect(error).toMatchObject({
        code: 'XX000',
        message: expect.stringMatching(/shard is not active/),
      });
    }
    expect((await c.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }]);
    h.failNext(1, 'rejected execution of org.elasticsearch.action.bulk.BulkShardRequest');
    await expect(c.query('SELECT 1')).rejects.toThrow(/rejected execution/);
  });

  it('keeps statements unanswered while paused', async () => {
    h.pause();
    let answered = false;
    const pending = c.query('SELECT 1 AS x').then((r) => {
      answered = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toBe(false);
    h.resume();
    expect((await pending).rows).toEqual([{ x: 1 }]);
  });

  it('drops connections, and stops and starts again on the same port with the same data', async () => {
    await c.query(`INSERT INTO t (oid, data) VALUES ('a', '{}')`);
    const errored = new Promise((resolve) => c.once('error', resolve));
    h.dropConnections();
    await errored;
    const port = h.port;
    await h.stop();
    const refused = new pg.Client({ connectionString: h.url() });
    await expect(refused.connect()).rejects.toThrow(/ECONNREFUSED/);
    await h.start();
    expect(h.port).toBe(port);
    c = new pg.Client({ connectionString: h.url() });
    await c.connect();
    expect((await c.query(`SELECT oid FROM t WHERE oid = 'a'`)).rows).toEqual([{ oid: 'a' }]);
  });

  it('behaves as the CrateDB version it is told', async () => {
    const v6 = await CrateHarness.start({ version: '6.4.3' });
    const c6 = new pg.Client({ connectionString: v6.url() });
    await c6.connect();
    try {
      expect((await c6.query('SELECT version() AS v')).rows[0]!.v).toMatch(/^CrateDB 6\.4\.3 /);
      await expect(c6.query('SELEC 1')).rejects.toMatchObject({ code: '42601' });
      await c6.query('CREATE TABLE t (oid TEXT PRIMARY KEY, data OBJECT)');
      const nested = await c6.query(`INSERT INTO t (oid, data) VALUES ('a', '{"n": [[1], [2]]}')`);
      expect(nested.rowCount).toBe(1);
      // `InsertFromValues.reportErrorAsRowCount` (6.4.3): a multi-row INSERT reports an
      // unavailable shard as a smaller row count; one row still fails.
      v6.failNext(1);
      const multi = await c6.query(`INSERT INTO t (oid, data) VALUES ('b', '{}'), ('c', '{}')`);
      expect(multi.rowCount).toBe(0);
      v6.failNext(1);
      await expect(c6.query(`INSERT INTO t (oid, data) VALUES ('b', '{}')`)).rejects.toThrow(
        /shard is not active/,
      );
    } finally {
      await c6.end();
      await v6.close();
    }
  });
});

describe('npm run cratedb-harness (harness only)', () => {
  it('prints one ready line once it accepts connections and exits on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/support/cratedb/standalone.ts', '--port', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    try {
      const deadline = Date.now() + 20_000;
      while (!stdout.includes('\n') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const line = stdout.split('\n')[0]!;
      expect(line).toMatch(/^ready postgresql:\/\/crate@127\.0\.0\.1:\d+\/doc$/);
      const c = new pg.Client({ connectionString: line.slice('ready '.length) });
      await c.connect();
      expect((await c.query('SELECT version() AS v')).rows[0]!.v).toMatch(/^CrateDB 5\.10\./);
      await c.end();
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });
});
