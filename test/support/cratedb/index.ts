// A CrateDB stand-in for tests: the PostgreSQL wire protocol in front of an in-memory engine
// with CrateDB's semantics (see README "The CrateDB test harness"), plus faults tests can
// trigger: stop/start on the same port, dropped connections, failing statements, a pause.
import net from 'node:net';
import { Engine } from './engine.js';
import {
  PgError,
  WireSession,
  type SessionInfo,
  type StatementResult,
  type StatementRunner,
} from './wire.js';

export interface CrateHarnessOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** The CrateDB version to behave as (default 5.10.16). */
  version?: string;
  /** The periodic refresh (`refresh_interval`, default 1000 ms). */
  refreshIntervalMs?: number;
}

/**
 * A transient CrateDB error as the PostgreSQL protocol carries it while a shard is unavailable:
 * `UnavailableShardsException`'s message (XX000, `PGError.fromThrowable`).
 */
const DEFAULT_FAULT =
  '[doc.t][0] primary shard is not active Timeout: [1m], request: [ShardUpsertRequest]';

export class CrateHarness implements StatementRunner {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly engine: Engine;
  private refreshTimer: NodeJS.Timeout | null = null;
  private failures: { count: number; message: string } = { count: 0, message: DEFAULT_FAULT };
  private paused: { promise: Promise<void>; release: () => void } | null = null;
  private closed = false;

  private constructor(
    public port: number,
    readonly version: string,
    private readonly refreshIntervalMs: number,
  ) {
    this.engine = new Engine({ version });
  }

  static async start(options: CrateHarnessOptions = {}): Promise<CrateHarness> {
    const harness = new CrateHarness(
      options.port ?? 0,
      options.version ?? '5.10.16',
      options.refreshIntervalMs ?? 1000,
    );
    await harness.start();
    return harness;
  }

  url(database = 'doc'): string {
    return `postgresql://crate@127.0.0.1:${this.port}/${database}`;
  }

  /** Listens (again) on the same port, with the same data. */
  async start(): Promise<void> {
    if (this.closed) throw new Error('the CrateDB harness was closed');
    if (this.server) return;
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      new WireSession(socket, this, () => this.version);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
    this.refreshTimer = setInterval(
      () => this.engine.refreshDue(this.refreshIntervalMs),
      Math.min(100, this.refreshIntervalMs),
    );
    this.refreshTimer.unref();
  }

  /** Closes the listener and every connection; the data stays for start(). */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = null;
    this.dropConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** The next `count` statements fail with a transient CrateDB error (XX000). */
  failNext(count: number, message = DEFAULT_FAULT): void {
    this.failures = { count, message };
  }

  /** Statements wait unanswered until resume(). */
  pause(): void {
    if (this.paused) return;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => (release = resolve));
    this.paused = { promise, release };
  }

  resume(): void {
    this.paused?.release();
    this.paused = null;
  }

  async close(): Promise<void> {
    this.resume();
    await this.stop();
    this.closed = true;
    this.engine.tables.clear();
  }

  parse(statements: string[]): void {
    this.engine.parse(statements);
  }

  async run(
    sql: string,
    params: (string | null)[],
    session: SessionInfo,
  ): Promise<StatementResult> {
    while (this.paused) await this.paused.promise;
    if (this.failures.count > 0) {
      this.failures.count--;
      if (this.engine.shardFailuresAsRowCount && this.engine.isMultiRowInsert(sql)) {
        return { columns: null, rows: [], tag: 'INSERT 0 0' };
      }
      throw new PgError('XX000', this.failures.message);
    }
    return this.engine.run(sql, params, session);
  }
}
