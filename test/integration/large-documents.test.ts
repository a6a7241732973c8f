// Large documents, bounded by --batch-bytes: cdc-relay through the snapshot and the stream, with
// the relay SIGKILLed in the middle of each and restarted; update patches applied to large
// stored rows; verify and replay of large documents. Fewer documents than the benchmark
// (bench/large.ts runs 300 × 2 MB and 20 × 15 MB), still large ones.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { EJSON } from 'bson';
import type { Collection, Document } from 'mongodb';
import {
  expectConverges,
  query,
  relayArgs,
  runCli,
  spawnRelay,
  client,
  mongo,
  servers,
  target,
  useServers,
  waitFor,
} from '../support/relay.js';

useServers();

const MB = 1_000_000;

/** A report with its content inline: one large base64 body and a few small fields. */
function report(id: number, bytes: number, version = 0): Document {
  return {
    _id: id,
    version,
    title: `report ${id}`,
    body: randomBytes(Math.floor((bytes * 3) / 4)).toString('base64'),
  };
}

async function insertReports(coll: Collection<Document>, ids: number[], bytes: number) {
  for (const id of ids) await coll.insertOne(report(id, bytes));
}

async function rowCount(table: string, where = 'TRUE'): Promise<number> {
  const name = `"${target.schema}"."${table}"`;
  const [row] = await query(target, `SELECT count(*) AS n FROM ${name} WHERE ${where}`, [], name);
  return Number(row!.n);
}

/**
 * The relay killed with SIGKILL once `written` holds, then restarted; returns the restarted relay
 * and what `written` saw just after the kill.
 */
async function killMidway(args: string[], written: () => Promise<number>, enough: number) {
  const first = spawnRelay(['cdc-relay', ...args]);
  await waitFor(async () => (await written()) >= enough, 'some documents written', 60_000);
  first.child.kill('SIGKILL');
  expect(await first.exited).toBeNull();
  const atKill = await written();
  return { relay: spawnRelay(['cdc-relay', ...args]), atKill };
}

/**
 * Waits until the restarted relay has resumed from its checkpoint, before comparing table and
 * collection: each comparison reads every 2 MB document from the harness, which runs in this
 * process, and on a loaded machine that kept the harness from answering the relay's first
 * server selection within its 10 s, and the relay then waits for it and tries again.
 */
async function untilStarted(relay: ReturnType<typeof spawnRelay>) {
  await relay.waitForOutput(/resuming from checkpoint/, 60_000);
}

/**
 * CrateDB indexes at most 32766 bytes of a string in a dynamic object (the relay dead-letters a
 * longer one, naming the way out): documents that carry megabytes inline go into an
 * OBJECT(IGNORED) table there, as README advises.
 */
function largeArgs(database: string, ...extra: string[]): string[] {
  const policy = target.dialect === 'cratedb' ? ['--object-policy', 'ignored'] : [];
  return relayArgs(servers, database, ...policy, ...extra);
}

describe.runIf(!process.env.TEST_MONGODB_URL)('large documents', () => {
  it('snapshot and stream of 2 MB documents in batches of a few MB, killed and restarted in each', async () => {
    const database = mongo.database('large');
    const coll = client.db(database).collection('reports');
    // 12 documents of 2 MB; --batch-bytes 2MB makes batches of one document (a batch closes at
    // half the bound, always with its first document, and nothing is read ahead of a batch that
    // fills the bound), so a kill lands in the middle of the copy and of the stream.
    await insertReports(
      coll,
      Array.from({ length: 12 }, (_, i) => i),
      2 * MB,
    );
    const args = largeArgs(
      database,
      '--collection',
      'reports',
      '--batch-bytes',
      '2MB',
      '--stream-id',
      'large',
    );
    const { relay: copying, atKill } = await killMidway(args, () => rowCount('reports'), 3);
    expect(atKill).toBeLessThan(12);
    await untilStarted(copying);
    await expectConverges(coll, target, 'reports', 120_000);

    // The stream: new documents, replaced documents (a new body) and deletes, while stopped
    // and running.
    copying.child.kill('SIGTERM');
    expect(await copying.exited).toBe(0);
    await insertReports(
      coll,
      Array.from({ length: 6 }, (_, i) => 100 + i),
      2 * MB,
    );
    for (let id = 0; id < 3; id++)
      await coll.replaceOne({ _id: id as never }, report(id, 2 * MB, 1));
    await coll.deleteMany({ _id: { $in: [6, 7] } as never });
    const stream = await killMidway(args, () => rowCount('reports', "oid LIKE '10_'"), 2);
    expect(stream.atKill).toBeLessThan(6);
    const streaming = stream.relay;
    try {
      await insertReports(
        coll,
        Array.from({ length: 2 }, (_, i) => 200 + i),
        2 * MB,
      );
      await untilStarted(streaming);
      await expectConverges(coll, target, 'reports', 120_000);
    } finally {
      streaming.child.kill('SIGTERM');
      expect(await streaming.exited).toBe(0);
    }
  }, 300_000);

  it('patches to large rows read them back in groups within --batch-bytes; verify compares them', async () => {
    const database = mongo.database('patchlarge');
    const coll = client.db(database).collection('patched');
    const ids = Array.from({ length: 8 }, (_, i) => i);
    await insertReports(coll, ids, 2 * MB);
    // Rows are read back in groups of half of --batch-bytes: one 2 MB row each here.
    const relay = spawnRelay([
      'cdc-relay',
      ...largeArgs(
        database,
        '--collection',
        'patched',
        '--full-document',
        'patch',
        '--batch-bytes',
        '4MB',
      ),
    ]);
    try {
      await relay.waitForOutput(/streaming/, 60_000);
      // One batch of small update events, each a patch to a 2 MB row.
      await coll.updateMany({}, { $set: { version: 1 }, $unset: { title: '' } });
      await coll.updateOne({ _id: 3 as never }, { $set: { title: 'three' } });
      await expectConverges(coll, target, 'patched', 120_000);
    } finally {
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
    }

    const verify = (...extra: string[]) =>
      runCli([
        'verify',
        ...['--mongodb-url', mongo.url, '--database', database, '--collection', 'patched'],
        ...['--target-url', target.url, '--schema', target.schema, '--batch-bytes', '4MB'],
        ...extra,
      ]);
    const ok = await verify();
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/8 documents, 8 rows: 8 matching, 0 missing, 0 extra, 0 different/);

    const table = `"${target.schema}"."patched"`;
    const changeBody =
      target.dialect === 'cratedb'
        ? `UPDATE ${table} SET data['body'] = 'changed' WHERE oid = '5'`
        : `UPDATE ${table} SET data = jsonb_set(data, '{body}', '"changed"') WHERE oid = '5'`;
    await query(target, changeBody);
    const bad = await verify();
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/7 matching, 0 missing, 0 extra, 1 different/);
    expect(bad.stdout).toMatch(/different: 5 \(body\)/);
  }, 300_000);

  it('replay applies lines of megabytes in batches within --batch-bytes', async () => {
    const database = mongo.database('replaylarge');
    const coll = client.db(database).collection('reports');
    const docs = [1, 2, 3, 4].map((id) => report(id, 2 * MB));
    await coll.insertMany(docs);
    const lines = docs.map((doc) =>
      EJSON.stringify(
        {
          _id: { _data: `8200000001${doc._id}` },
          operationType: 'insert',
          ns: { db: database, coll: 'reports' },
          documentKey: { _id: doc._id },
          fullDocument: doc,
        },
        { relaxed: false },
      ),
    );
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'relay-replay-')), 'large.jsonl');
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    const policy = target.dialect === 'cratedb' ? ['--object-policy', 'ignored'] : [];
    const result = await runCli([
      'replay',
      file,
      ...['--target-url', target.url, '--schema', target.schema, '--batch-bytes', '4MB'],
      ...['--table', 'replayed', ...policy],
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/replayed 4 events/);
    await expectConverges(coll, target, 'replayed', 60_000);
  }, 120_000);

  it('one document larger than --batch-bytes is a batch of its own, never refused', async () => {
    const database = mongo.database('huge');
    const coll = client.db(database).collection('huge');
    await insertReports(coll, [1], 12 * MB);
    const relay = spawnRelay([
      'cdc-relay',
      ...largeArgs(database, '--collection', 'huge', '--batch-bytes', '1MB'),
    ]);
    try {
      await relay.waitForOutput(/streaming/, 60_000);
      await insertReports(coll, [2], 12 * MB);
      await expectConverges(coll, target, 'huge', 120_000);
    } finally {
      relay.child.kill('SIGTERM');
      const code = await relay.exited;
      if (code !== 0) console.log(relay.output());
      expect(code).toBe(0);
    }
  }, 300_000);
});
