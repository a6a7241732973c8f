// `relay cdc-relay`: keep target tables in step with MongoDB collections until stopped.
import type { MongoClient } from 'mongodb';
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
import { connectTarget } from '../target/connect.js';
import { TargetWriter } from '../target/writer.js';

export interface RunOptions {
  /** Stops the relay (after the batch in flight); by default SIGINT and SIGTERM do. */
  signal?: AbortSignal;
  /** Called with the relay once it is connected, before it starts. */
  onStart?(relay: Relay): void;
}

export async function cdcRelay(settings: RelaySettings, run: RunOptions = {}): Promise<Relay> {
  const log = createLogger(settings.logLevel);
  const target = await connectTarget(settings.targetUrl, settings.dialect);
  let client;
  try {
    client = mongoClient(settings.mongodbUrl);
  } catch (error) {
    await target.close();
    throw error;
  }
  const schema = settings.schema ?? target.dialect.defaultSchema;
  const streamId = settings.streamId ?? defaultStreamId(settings, schema);
  const writer = new TargetWriter(target.db, target.dialect, {
    schema,
    streamId,
    onError: settings.onError,
    objectPolicy: settings.objectPolicy,
    tableFor: (collection) => settings.table ?? target.dialect.tableName(collection),
    // Stored rows read back for patches come in groups the size of a batch.
    lookupBytes: Math.max(1, Math.floor(settings.batchBytes / 2)),
  });
  const relay = new Relay(
    client,
    writer,
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
    if (!(await connectSource(relay, client, settings, controller.signal))) {
      log.info('stopped before MongoDB answered; nothing was read or written');
      return relay;
    }
    log.info(`relay ${streamId}: ${target.dialect.name} target, schema ${schema}`);
    await relay.run(controller.signal);
    log.info(
      `stopped; ${relay.stats.eventsWritten} events and ${relay.stats.snapshotDocs} snapshot documents written`,
    );
    return relay;
  } finally {
    stopProgress();
    await metricsServer?.close();
    releaseSignals();
    await client.close().catch(() => {});
    await target.close().catch(() => {});
  }
}

/**
 * MongoDB at start: waited for while unreachable (README: MongoDB unreachable at start), up to
 * --mongodb-start-timeout; a refusal ends the relay at once. False when stopped first.
 */
async function connectSource(
  relay: Relay,
  client: MongoClient,
  settings: RelaySettings,
  signal: AbortSignal,
): Promise<boolean> {
  const { mongodbUrl: url, mongodbStartTimeoutMs: timeoutMs } = settings;
  const started = Date.now();
  try {
    return await relay.connect(() => openMongo(client, url, true), timeoutMs, signal);
  } catch (error) {
    // A transient error thrown means the wait ran out.
    const gaveUp = isTransientMongoError(error)
      ? `; gave up after ${((Date.now() - started) / 1000).toFixed(1)}s (--mongodb-start-timeout)`
      : '';
    throw cannotConnect(url, error, gaveUp);
  }
}
