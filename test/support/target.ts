// The target an integration test writes to. Each test project of vitest.config.ts runs the
// integration suite on one target: the embedded PostgreSQL, the in-process CrateDB harness, or
// (TEST_TARGET_URL) a real server, whose dialect is asked. Tests see only a TestTarget.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';

export type TargetDialect = 'postgres' | 'cratedb';

/** What a test project was given by its global setup (or its config). */
export interface RunTarget {
  dialect: TargetDialect;
  /** TEST_TARGET_URL, or the embedded PostgreSQL's admin URL; the CrateDB harness has none. */
  adminUrl?: string;
  /** True when the run uses TEST_TARGET_URL: no faults can be injected into it. */
  external: boolean;
}

declare module 'vitest' {
  export interface ProvidedContext {
    target: RunTarget;
  }
}

export interface TestTarget {
  /** Connection URL of the database the test file owns. */
  url: string;
  /** Schema the file's tables go in; unique per file on a shared external server. */
  schema: string;
  /** True when this run uses TEST_TARGET_URL (a real CrateDB or PostgreSQL). */
  external: boolean;
  dialect: TargetDialect;
  cleanup(): Promise<void>;
}

/** A target whose server the test owns, so that it can take it down (an outage) and back up. */
export interface StoppableTarget extends TestTarget {
  down(): Promise<void>;
  up(): Promise<void>;
}

/** The target of this test project. */
export function runTarget(): RunTarget {
  return inject('target');
}

/** Fault tests that stop the target need a server of the run's own, not TEST_TARGET_URL. */
export function canStopTarget(): boolean {
  return !runTarget().external;
}

/** Asks a server which dialect it speaks (CrateDB says so in version()). */
export async function detectDialect(url: string): Promise<TargetDialect> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ version: string }>('SELECT version() AS version');
    return /crate/i.test(rows[0]?.version ?? '') ? 'cratedb' : 'postgres';
  } finally {
    await client.end();
  }
}

function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export async function withClient<T>(
  url: string,
  use: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * This test file's own target, so files never see each other's tables: a fresh database on the
 * embedded PostgreSQL, a CrateDB harness of its own, or a fresh schema on TEST_TARGET_URL.
 */
export async function createTestTarget(run: RunTarget = runTarget()): Promise<TestTarget> {
  if (run.external) return externalTarget(run.adminUrl!, run.dialect);
  if (run.dialect === 'cratedb') return startOwnTarget('cratedb');
  const database = uniqueName('relay_test');
  await withClient(run.adminUrl!, (c) => c.query(`CREATE DATABASE "${database}"`));
  const url = new URL(run.adminUrl!);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    schema: 'public',
    external: false,
    dialect: 'postgres',
    cleanup: () =>
      withClient(run.adminUrl!, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      }),
  };
}

async function externalTarget(url: string, dialect: TargetDialect): Promise<TestTarget> {
  const schema = uniqueName('relay_test');
  // CrateDB creates schemas implicitly with the first table.
  if (dialect === 'postgres') await withClient(url, (c) => c.query(`CREATE SCHEMA "${schema}"`));
  return {
    url,
    schema,
    external: true,
    dialect,
    cleanup: () =>
      withClient(url, async (c) => {
        if (dialect === 'postgres') {
          await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          return;
        }
        const tables = await c.query<{ table_name: string }>(
          'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
          [schema],
        );
        for (const t of tables.rows)
          await c.query(`DROP TABLE IF EXISTS "${schema}"."${t.table_name}"`);
      }),
  };
}

/** A server of the test's own on the run's dialect (never TEST_TARGET_URL), for outages. */
export async function startOwnTarget(
  dialect: TargetDialect = runTarget().dialect,
): Promise<StoppableTarget> {
  if (dialect === 'cratedb') {
    const { CrateHarness } = await import('./cratedb/index.js');
    const harness = await CrateHarness.start();
    return {
      url: harness.url(),
      schema: 'doc',
      external: false,
      dialect,
      down: () => harness.stop(),
      up: () => harness.start(),
      cleanup: () => harness.close(),
    };
  }
  const { PostgresServer } = await import('./postgres.js');
  const server = await PostgresServer.start();
  return {
    url: server.url(),
    schema: 'public',
    external: false,
    dialect,
    down: () => server.pause(),
    up: () => server.unpause(),
    cleanup: () => server.stop(),
  };
}

/**
 * What each target refuses, for dead-letter tests. `refusedValue` is refused in a field whose
 * earlier rows held numbers: PostgreSQL's jsonb cannot hold a NUL character; CrateDB has typed
 * the sub-column BIGINT by its first value and finds no cast for the text. `refuse` is a rule
 * the user adds to a table, refusing documents with a `flag` text, and `allow` fixes it again.
 * `refusesKindChanges`: CrateDB types each sub-column once, and refuses (or would alter) a
 * value of another kind later, a mixed-type array too, so the relay dead-letters those rows
 * (DESIGN.md §1); PostgreSQL's jsonb stores them.
 */
export const refusals: Record<
  TargetDialect,
  {
    refusedValue: string;
    refusesKindChanges: boolean;
    refuse(target: TestTarget, table: string): Promise<void>;
    allow(target: TestTarget, table: string): Promise<void>;
    /** How the target's error names the cause. */
    error: RegExp;
  }
> = {
  postgres: {
    refusedValue: 'nul\u0000here',
    refusesKindChanges: false,
    refuse: (target, table) =>
      execute(
        target,
        `ALTER TABLE "${target.schema}"."${table}" ADD CONSTRAINT no_flag CHECK (NOT (data ? 'flag'))`,
      ),
    allow: (target, table) =>
      execute(target, `ALTER TABLE "${target.schema}"."${table}" DROP CONSTRAINT no_flag`),
    error: /no_flag/,
  },
  cratedb: {
    refusedValue: 'not a number',
    refusesKindChanges: true,
    refuse: (target, table) =>
      execute(target, `ALTER TABLE "${target.schema}"."${table}" ADD COLUMN data['flag'] BIGINT`),
    // A column's type cannot change in CrateDB: the user recreates the table with the right one.
    allow: async (target, table) => {
      const name = `"${target.schema}"."${table}"`;
      await execute(target, `DROP TABLE ${name}`);
      await execute(
        target,
        `CREATE TABLE ${name} ("oid" TEXT PRIMARY KEY, "data" OBJECT(DYNAMIC) AS ("flag" TEXT))`,
      );
    },
    error: /flag/,
  },
};

async function execute(target: TestTarget, statement: string): Promise<void> {
  await withClient(target.url, (c) => c.query(statement));
}
