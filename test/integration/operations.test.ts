// Operating the relay: Prometheus metrics that move with the events, /healthz that follows the
// target, logs that never show a password, status and dead letters read from the target, and
// options from a config file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EJSON } from 'bson';
import { deadLetterSettings } from '../../src/config.js';
import { letterGroups } from '../../src/commands/dead-letters.js';
import { connectTarget } from '../../src/target/connect.js';
import { DEAD_LETTER_TABLE, TargetWriter } from '../../src/target/writer.js';
import { freePort } from '../support/postgres.js';
import { canStopTarget, refusals, startOwnTarget } from '../support/target.js';
import {
  parseOptions,
  relayArgs,
  runCli,
  spawnRelay,
  startRelay,
  tableRows,
  client,
  mongo,
  servers,
  target,
  useServers,
  waitFor,
} from '../support/relay.js';

useServers();

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

  it.runIf(canStopTarget())(
    '/healthz turns 503 while the target is down and 200 when it is back',
    async () => {
      const own = await startOwnTarget();
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
            own.url,
            '--schema',
            own.schema,
          ),
        );
        await waitFor(async () => (await get(port, '/healthz')).status === 200, 'healthy');
        await own.down();
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
        await own.up();
        await waitFor(
          async () => (await get(port, '/healthz')).status === 200,
          'healthy again',
          30_000,
        );
        const text = (await get(port, '/metrics')).body;
        expect(metric(text, 'relay_outages_total', 'side="target"')).toBeGreaterThanOrEqual(1);
        await relay.stop();
      } finally {
        await own.cleanup();
      }
    },
    60_000,
  );
  it.runIf(canStopTarget())(
    'waits for a target unreachable at start (503 connecting, an outage counted), then relays',
    async () => {
      const own = await startOwnTarget();
      try {
        const database = mongo.database('late_target');
        const coll = client.db(database).collection('t');
        await coll.insertOne({ _id: 1 as never });
        const port = await freePort();
        // An orchestrator starting the relay before the target, as before MongoDB.
        await own.down();
        const starting = startRelay(
          relayArgs(
            servers,
            database,
            '--collection',
            't',
            '--metrics-port',
            String(port),
            '--target-url',
            own.url,
            '--schema',
            own.schema,
          ),
        );
        const waiting = await waitFor(async () => {
          const r = await get(port, '/healthz').catch(() => null);
          return r?.status === 503 ? r : null;
        }, 'unhealthy while the target is not there');
        expect(JSON.parse(waiting.body)).toMatchObject({ ok: false, phase: 'connecting' });
        await waitFor(async () => {
          const text = (await get(port, '/metrics')).body;
          return (metric(text, 'relay_retries_total', 'side="target"') ?? 0) >= 1;
        }, 'a retry of the target counted');
        const text = (await get(port, '/metrics')).body;
        expect(metric(text, 'relay_outages_total', 'side="target"')).toBe(1);
        expect(JSON.parse((await get(port, '/healthz')).body).reason).toMatch(
          /^target unavailable for [\d.]+s$/,
        );
        await own.up();
        const relay = await starting;
        await coll.insertOne({ _id: 2 as never });
        await waitFor(
          async () => (await tableRows(own, 't')).size === 2,
          'the snapshot and the later insert written',
          30_000,
        );
        await waitFor(async () => (await get(port, '/healthz')).status === 200, 'healthy', 30_000);
        await relay.stop();
      } finally {
        await own.cleanup();
      }
    },
    90_000,
  );
});

describe('logs', () => {
  it('are JSON lines on a pipe, and never show a password', async () => {
    const database = mongo.database('logs');
    await client.db(database).createCollection('l');
    // The harness and a real CrateDB's `crate` user need no password; one in the URL is ignored.
    const url = new URL(target.url);
    url.password ||= 'secret';
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
        '--target-url',
        url.toString(),
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

describe('status and dead letters', () => {
  it('status reports streams, dead letters and rows; dead-letters retry re-applies a row once its cause is fixed', async () => {
    const database = mongo.database('dlops');
    const coll = client.db(database).collection('guarded');
    await coll.insertOne({ _id: 1 as never, ok: true });
    const relay = await startRelay(
      relayArgs(servers, database, '--collection', 'guarded', '--stream-id', 'guarded'),
    );
    await waitFor(async () => (await tableRows(target, 'guarded')).size === 1, 'snapshot');
    // The user's own rule on the table refuses a document: a row error, dead-lettered.
    const refusal = refusals[target.dialect];
    await refusal.refuse(target, 'guarded');
    await coll.insertOne({ _id: 2 as never, flag: 'x' });
    await coll.insertOne({ _id: 4 as never, flag: 'y' });
    await coll.insertOne({ _id: 3 as never, ok: true });
    await waitFor(async () => (await tableRows(target, 'guarded')).has('3'), 'relay goes on');
    await relay.stop();

    const targetArgs = ['--target-url', target.url, '--schema', target.schema];
    const report = await runCli(['status', ...targetArgs, '--json']);
    expect(report.code, report.stderr).toBe(0);
    const parsed = JSON.parse(report.stdout);
    const stream = parsed.streams.find((s: { streamId: string }) => s.streamId === 'guarded');
    expect(stream).toMatchObject({ deadLetters: 2, snapshotPending: false });
    expect(Date.parse(stream.positionTime)).toBeGreaterThan(Date.now() - 600_000);
    expect(Date.parse(stream.lastEventTime)).toBeGreaterThan(Date.now() - 600_000);
    expect(parsed.tables).toContainEqual({ table: 'guarded', rows: 2 });
    expect((await runCli(['status', ...targetArgs])).stdout).toMatch(
      /stream guarded: position .*dead letters 2/,
    );

    const list = await runCli(['dead-letters', 'list', ...targetArgs, '--stream-id', 'guarded']);
    expect(list.stdout).toMatch(new RegExp(`guarded ${database}\\.guarded 2 insert: `));
    expect(list.stdout).toMatch(refusal.error);
    const stillRefused = await runCli([
      'dead-letters',
      'retry',
      ...targetArgs,
      '--stream-id',
      'guarded',
    ]);
    expect(stillRefused.code).toBe(1);
    expect(stillRefused.stdout).toMatch(
      /re-applied 0 of 2 dead letters\n {2}still refused .*\n {2}still refused /,
    );

    await refusal.allow(target, 'guarded');
    // One letter a read: the second is read after the first was applied and removed.
    const retried = await runCli([
      'dead-letters',
      'retry',
      ...targetArgs,
      '--stream-id',
      'guarded',
      '--batch-bytes',
      '1',
    ]);
    expect(retried.code, retried.stdout + retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/re-applied 2 of 2 dead letters/);
    expect((await tableRows(target, 'guarded')).get('2')).toEqual({ _id: 2, flag: 'x' });
    expect((await tableRows(target, 'guarded')).get('4')).toEqual({ _id: 4, flag: 'y' });
    expect(
      (await runCli(['dead-letters', 'list', ...targetArgs, '--stream-id', 'guarded'])).stdout,
    ).toMatch(/^0 dead letters/m);
  });

  it('reads dead letters in pages of keys and groups of --batch-bytes, output unchanged', async () => {
    const connection = await connectTarget(target.url, 'auto');
    try {
      const { db, dialect } = connection;
      const writer = new TargetWriter(db, dialect, {
        schema: target.schema,
        streamId: 'paged',
        onError: 'dlq',
        objectPolicy: 'dynamic',
        tableFor: (c) => c,
      });
      await writer.prepare([]);
      // More letters than a page of keys holds (1000), times shared across the page boundary
      // (ordered by id within one), then three of 3 MB: two do not fit in one read of 4 MiB.
      const base = Date.now() - 60_000;
      const small = Array.from({ length: 2100 }, (_, i) => ({
        id: `paged-${String(i).padStart(5, '0')}`,
        at: base + Math.floor(i / 7),
        event: EJSON.stringify([{ n: i }], { relaxed: false }),
      }));
      const large = [0, 1, 2].map((i) => ({
        id: `paged-large-${i}`,
        at: base + 1000 + i,
        event: EJSON.stringify([{ big: String(i).repeat(3_000_000) }], { relaxed: false }),
      }));
      const letters = [...small, ...large];
      const rows = letters.map((l) => ({
        id: l.id,
        stream_id: 'paged',
        ns: 'db.paged',
        oid: l.id,
        operation: 'insert',
        event: l.event,
        error: 'refused',
        created_at: new Date(l.at),
      }));
      for (let i = 0; i < small.length; i += 300) {
        await db
          .withSchema(target.schema)
          .insertInto(DEAD_LETTER_TABLE)
          .values(rows.slice(i, i + 300))
          .execute();
      }
      for (const row of rows.slice(small.length)) {
        await db.withSchema(target.schema).insertInto(DEAD_LETTER_TABLE).values(row).execute();
      }
      const args = ['--target-url', target.url, '--schema', target.schema, '--stream-id', 'paged'];

      const list = await runCli(['dead-letters', 'list', ...args, '--limit', '5000']);
      expect(list.code, list.stderr).toBe(0);
      const lines = list.stdout.trimEnd().split('\n');
      expect(lines.at(-1)).toBe(`${letters.length} dead letters`);
      expect(lines.slice(0, -1).map((line) => line.split(' ')[1])).toEqual(
        letters.map((l) => l.id),
      );
      expect(lines[0]).toBe(
        `${new Date(base).toISOString()} paged-00000 paged db.paged paged-00000 insert: refused`,
      );
      const first = await runCli(['dead-letters', 'list', ...args, '--limit', '1500']);
      expect(first.stdout).toMatch(/^1500 dead letters \(the first 1500; --limit for more\)$/m);
      const json = await runCli(['dead-letters', 'list', ...args, '--limit', '5000', '--json']);
      const parsed = json.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line) as { id: string; event: { big?: string }[] });
      expect(parsed.map((l) => l.id)).toEqual(letters.map((l) => l.id));
      expect(parsed.at(-1)!.event[0]!.big).toHaveLength(3_000_000);

      // Each read holds at most --batch-bytes of letters, or one larger letter alone.
      const settings = {
        ...deadLetterSettings('list', { targetUrl: target.url, batchBytes: '4MiB' }),
        schema: target.schema,
        streamId: 'paged',
        limit: null,
      };
      const groups: number[][] = [];
      for await (const group of letterGroups(db, target.schema, settings)) {
        groups.push(group.map((l) => Buffer.byteLength(l.event) + Buffer.byteLength(l.error)));
      }
      expect(groups.flat()).toHaveLength(letters.length);
      for (const sizes of groups) {
        const bytes = sizes.reduce((a, b) => a + b, 0);
        expect(
          sizes.length === 1 || bytes <= 4 * 1024 * 1024,
          `${sizes.length} letters, ${bytes} bytes`,
        ).toBe(true);
      }
      expect(groups.filter((sizes) => sizes.some((n) => n > 3_000_000))).toHaveLength(3);

      const purged = await runCli(['dead-letters', 'purge', ...args]);
      expect(purged.stdout).toBe(`purged ${letters.length} dead letters\n`);
      expect((await runCli(['dead-letters', 'list', ...args])).stdout).toBe('0 dead letters\n');
    } finally {
      await connection.close();
    }
  }, 120_000);

  it('purge names what it removes, or needs --all', async () => {
    const targetArgs = ['--target-url', target.url, '--schema', target.schema];
    const refused = await runCli(['dead-letters', 'purge', ...targetArgs]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/name them with --stream-id, --ns or --id, or give --all/);
    const all = await runCli(['dead-letters', 'purge', ...targetArgs, '--all']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^purged \d+ dead letters/);
  });
});

describe('--config', () => {
  it('fills what flags and environment variables leave open, and rejects unknown keys', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-config-'));
    const file = path.join(dir, 'relay.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        database: 'fromfile',
        'batch-size': 7,
        collection: ['a', 'b'],
        'mongodb-url': 'mongodb://file',
        'target-url': 'postgresql://file',
      }),
    );
    process.env.BATCH_SIZE = '9';
    try {
      const options = await parseOptions('cdc-relay', ['--config', file, '--database', 'fromflag']);
      expect(options).toMatchObject({
        database: 'fromflag',
        batchSize: '9',
        collection: ['a', 'b'],
        mongodbUrl: 'mongodb://file',
      });
    } finally {
      delete process.env.BATCH_SIZE;
    }
    fs.writeFileSync(file, JSON.stringify({ 'batch-sise': 7 }));
    const typo = await runCli(['cdc-relay', '--config', file]);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(
      /unknown key "batch-sise" for cdc-relay; valid keys: mongodb-url, database, collection, filter, .*batch-size/,
    );
    fs.writeFileSync(file, '{ nope');
    expect((await runCli(['cdc-relay', '--config', file])).stderr).toMatch(
      /cannot be read as JSON/,
    );
  });
});
