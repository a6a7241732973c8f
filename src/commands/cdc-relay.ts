// `relay cdc-relay`: keep target tables in step with MongoDB collections until stopped.
import type { RelaySettings } from '../config.js';
import { defaultStreamId } from '../config.js';
import { ConfigError, errorMessage } from '../errors.js';
import { createLogger } from '../log.js';
import { serveMetrics } from '../metrics.js';
import { cannotConnect, mongoClient, openMongo } from '../mongo/connect.js';
import { isTransientMongoError } from '../mongo/errors.js';
import { onStopSignal } from '../signals.js';
import { Relay } from '../relay/pipeline.js';
import { startProgress } from '../stats.js';
import type { Side } from '../relay/health.js';
import { cannotReachTarget, targetDb } from '../target/connect.js';
import { resolveDialect, type Dialect } from '../target/dialect.js';
import { classifyTargetError } from '../target/errors.js';
import { TargetWriter, type AnyDb } from '../target/writer.js';

export interface RunOptions {
  /** Stops the relay (after the batch in flight); by default SIGINT and SIGTERM do. */
  signal?: AbortSignal;
  /** Called with the relay before it connects: its metrics and health are live from then. */
  onStart?(relay: Relay): void;
}

export async function cdcRelay(settings: RelaySettings, run: RunOptions = {}): Promise<Relay> {
  const log = createLogger(settings.logLevel);
  const db = targetDb(settings.targetUrl);
  let client;
  try {
    client = mongoClient(settings.mongodbUrl);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const relay = new Relay(
    client,
    db,
    {
      database: settings.database,
      collections: settings.collections,
      fullDocument: settings.fullDocument,
      filter: settings.filter,
      batchSize: settings.batchSize,
      batchBytes: settings.batchBytes,
      batchWaitMs: settings.batchWaitMs,
      snapshot: settings.snapshot,
      onDrop: settings.onDrop,
      idleCheckpointMs: 5000,
    },
    log,
  );
  const controller = new AbortController();
  const stop = (signal: string) => {
    if (controller.signal.aborted) {
      log.warn(`second ${signal}: exiting without waiting for the batch in flight`);
      process.exit(130);
    }
    log.info(`${signal}: finishing the batch in flight, then stopping`);
    controller.abort();
  };
  let releaseSignals = () => {};
  if (run.signal) {
    run.signal.addEventListener('abort', () => controller.abort(), { once: true });
  } else {
    releaseSignals = onStopSignal(stop);
  }
  const stopProgress = startProgress(
    relay.stats,
    () => relay.status,
    (line) => log.info(line),
    settings.progressIntervalMs,
  );
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | null = null;
  try {
    if (settings.metricsPort !== null) {
      metricsServer = await serveMetrics(
        relay.metrics,
        () => relay.health(),
        settings.metricsPort,
      ).catch((error: unknown) => {
        throw new ConfigError(
          `--metrics-port ${settings.metricsPort} cannot be used: ${errorMessage(error)}`,
        );
      });
      log.info(`metrics on http://0.0.0.0:${metricsServer.port}/metrics, health on /healthz`);
    }
    run.onStart?.(relay);
    // The target first: its dialect names the stream (default schema) and shapes the writer.
    let dialect: Dialect | undefined;
    const target = async () => {
      dialect = await resolveDialect(db, settings.dialect);
    };
    for (const [side, open] of [
      ['target', target],
      ['mongodb', () => openMongo(client, settings.mongodbUrl, true)],
    ] as const) {
      if (!(await connectAtStart(relay, side, open, settings, controller.signal))) {
        log.info(`stopped before ${SIDES[side].name} answered; nothing was read or written`);
        return relay;
      }
    }
    const writer = relayWriter(db, dialect!, settings);
    const { schema, streamId } = writer.options;
    log.info(`relay ${streamId}: ${dialect!.name} target, schema ${schema}`);
    await relay.run(writer, controller.signal);
    log.info(
      `stopped; ${relay.stats.eventsWritten} events and ${relay.stats.snapshotDocs} snapshot documents written`,
    );
    return relay;
  } finally {
    stopProgress();
    await metricsServer?.close();
    releaseSignals();
    await client.close().catch(() => {});
    await db.destroy().catch(() => {});
  }
}

function relayWriter(db: AnyDb, dialect: Dialect, settings: RelaySettings): TargetWriter {
  const schema = settings.schema ?? dialect.defaultSchema;
  return new TargetWriter(db, dialect, {
    schema,
    streamId: settings.streamId ?? defaultStreamId(settings, schema),
    onError: settings.onError,
    objectPolicy: settings.objectPolicy,
    tableFor: (collection) => settings.table ?? dialect.tableName(collection),
    // Stored rows read back for patches come in groups the size of a batch.
    lookupBytes: Math.max(1, Math.floor(settings.batchBytes / 2)),
  });
}

/** What differs between the two sides waited for at start. */
const SIDES = {
  target: {
    name: 'the target',
    option: '--target-start-timeout',
    isTransient: (error: unknown) => classifyTargetError(error).kind === 'transient',
    url: (s: RelaySettings) => s.targetUrl,
    timeoutMs: (s: RelaySettings) => s.targetStartTimeoutMs,
    cannotReach: cannotReachTarget,
  },
  mongodb: {
    name: 'MongoDB',
    option: '--mongodb-start-timeout',
    isTransient: isTransientMongoError,
    url: (s: RelaySettings) => s.mongodbUrl,
    timeoutMs: (s: RelaySettings) => s.mongodbStartTimeoutMs,
    cannotReach: cannotConnect,
  },
} satisfies Record<Side, unknown>;

/**
 * One side at start: waited for while unreachable (README: A server unreachable at start), up to
 * its start timeout; a refusal ends the relay at once. False when stopped first.
 */
async function connectAtStart(
  relay: Relay,
  side: Side,
  open: () => Promise<void>,
  settings: RelaySettings,
  signal: AbortSignal,
): Promise<boolean> {
  const { isTransient, option, cannotReach } = SIDES[side];
  const started = Date.now();
  try {
    return await relay.connect(
      open,
      { side, isTransient, timeoutMs: SIDES[side].timeoutMs(settings) },
      signal,
    );
  } catch (error) {
    // A transient error thrown means the wait ran out.
    const gaveUp = isTransient(error)
      ? `; gave up after ${((Date.now() - started) / 1000).toFixed(1)}s (${option})`
      : '';
    throw cannotReach(SIDES[side].url(settings), error, gaveUp);
  }
}
