// Operating the relay: Prometheus metrics that move with the events, /healthz that follows the
// target, and logs that never show a password.
import { describe, expect, it } from 'vitest';
import type { MongoClient } from 'mongodb';
import type { TestMongo } from '../support/mongo/index.js';
import { PostgresServer, freePort, type TestTarget } from '../support/postgres.js';
import {
  relayArgs,
  spawnRelay,
  startRelay,
  useServers,
  waitFor,
  type Servers,
} from '../support/relay.js';

let servers: Servers;
let mongo: TestMongo;
let client: MongoClient;
let target: TestTarget;

useServers((started) => {
  servers = started;
  ({ mongo, client, target } = started);
});

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.text() };
}

function metric(text: string, name: string, labels = ''): number | null {
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) ||
        (labels === '' && l.startsWith(`${name} `)),
    );
  return line ? Number(line.split(' ').at(-1)) : null;
}

describe('metrics and health', () => {
  it('counts events as they flow and reports lag, batches and snapshot progress', async () => {
    const database = mongo.database('metrics');
    const coll = client.db(database).collection('m');
    await coll.insertMany([{ _id: 1 as never }, { _id: 2 as never }]);
    const port = await freePort();
    const relay = await startRelay(
      relayArgs(servers, database, '--collection', 'm', '--metrics-port', String(port)),
    );
    const ns = `namespace="${database}.m"`;
    await waitFor(
      async () =>
        metric((await get(port, '/metrics')).body, 'relay_snapshot_documents_copied_total', ns) ===
        2,
      'snapshot counted',
    );
    await coll.insertMany([{ _id: 3 as never }, { _id: 4 as never }, { _id: 5 as never }]);
    await coll.updateOne({ _id: 3 as never }, { $set: { a: 1 } });
    await coll.deleteOne({ _id: 4 as never });
    const text = await waitFor(async () => {
      const body = (await get(port, '/metrics')).body;
      return metric(body, 'relay_events_written_total', `operation="delete",${ns}`) === 1
        ? body
        : null;
    }, 'events counted');
    expect(metric(text, 'relay_events_written_total', `operation="insert",${ns}`)).toBe(3);
    expect(metric(text, 'relay_events_written_total', `operation="update",${ns}`)).toBe(1);
    expect(metric(text, 'relay_events_read_total', `operation="insert",${ns}`)).toBe(3);
    expect(metric(text, 'relay_snapshot_documents_estimated', ns)).toBe(2);
    expect(metric(text, 'relay_batches_total')).toBeGreaterThan(0);
    expect(text).toMatch(/relay_batch_write_seconds_bucket\{le="0.1"\} \d+/);
    expect(text).toMatch(/relay_lag_seconds\{stage="written"\} [\d.]+/);
    expect(text).toMatch(/relay_checkpoint_age_seconds [\d.]+/);
    expect(text).toMatch(/process_resident_memory_bytes \d+/);
    const health = await get(port, '/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ ok: true, phase: 'streaming' });
    expect((await get(port, '/nothing')).status).toBe(404);
    await relay.stop();
  });

  it('/healthz turns 503 while the target is down and 200 when it is back', async () => {
    const server = await PostgresServer.start();
    try {
      const database = mongo.database('health');
      await client.db(database).createCollection('h');
      const port = await freePort();
      const relay = await startRelay(
        relayArgs(
          servers,
          database,
          '--collection',
          'h',
          '--metrics-port',
          String(port),
          '--target-url',
          server.url(),
          '--schema',
          'public',
        ),
      );
      await waitFor(async () => (await get(port, '/healthz')).status === 200, 'healthy');
      await server.pause();
      const down = await waitFor(async () => {
        const r = await get(port, '/healthz');
        return r.status === 503 ? r : null;
      }, 'unhealthy');
      expect(JSON.parse(down.body)).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/target/),
      });
      await client
        .db(database)
        .collection('h')
        .insertOne({ _id: 1 as never });
      await new Promise((r) => setTimeout(r, 1000));
      await server.unpause();
      await waitFor(
        async () => (await get(port, '/healthz')).status === 200,
        'healthy again',
        30_000,
      );
      const text = (await get(port, '/metrics')).body;
      expect(metric(text, 'relay_outages_total', 'side="target"')).toBeGreaterThanOrEqual(1);
      await relay.stop();
    } finally {
      await server.stop();
    }
  }, 60_000);
});

describe('logs', () => {
  it('are JSON lines on a pipe, and never show a password', async () => {
    const database = mongo.database('logs');
    await client.db(database).createCollection('l');
    const url = new URL(target.url);
    expect(url.password).not.toBe('');
    const relay = spawnRelay([
      'cdc-relay',
      ...relayArgs(
        servers,
        database,
        '--collection',
        'l',
        '--progress-interval',
        '1',
        '--log-level',
        'debug',
      ),
    ]);
    await relay.waitForOutput(/streaming/);
    await client
      .db(database)
      .collection('l')
      .insertOne({ secret: `postgresql://x:${url.password}@y` });
    await relay.waitForOutput(/insert 1/);
    relay.child.kill('SIGTERM');
    expect(await relay.exited).toBe(0);
    const lines = relay.output().trim().split('\n');
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(lines.map((l) => JSON.parse(l).level)).toContain('info');
    expect(relay.output()).not.toContain(`:${url.password}@`);
  });
});
