// verify, and the full loop a user runs to prove that nothing was lost (relay + workload +
// verify), including relay crashes.
import { describe, expect, it } from 'vitest';
import type { Document } from 'mongodb';
import {
  query,
  relayArgs,
  runCli,
  runWorkload,
  spawnRelay,
  startRelay,
  tableRows,
  client,
  mongo,
  servers,
  target,
  useServers,
} from '../support/relay.js';

useServers();

function workload(database: string, collection: string, ...args: string[]) {
  return runWorkload(mongo, database, collection, ...args);
}

function verifyArgs(database: string, collection: string, ...args: string[]) {
  return [
    'verify',
    '--mongodb-url',
    mongo.url,
    '--database',
    database,
    '--collection',
    collection,
    '--target-url',
    target.url,
    '--schema',
    target.schema,
    ...args,
  ];
}

describe('verify', () => {
  it('passes after relay + workload, then names a deleted and a changed row', async () => {
    const database = mongo.database('loop');
    await client.db(database).createCollection('accounts');
    const relay = await startRelay(relayArgs(servers, database, '--collection', 'accounts'));
    const run = await workload(
      database,
      'accounts',
      '--scenario',
      'bank',
      '--init',
      '--ops',
      '3000',
      '--rate',
      '0',
      '--concurrency',
      '4',
    );
    expect(run.code, run.stderr).toBe(0);
    const ok = await runCli(verifyArgs(database, 'accounts', '--wait', '30s'));
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/0 missing, 0 extra, 0 different/);
    await relay.stop();

    const [gone, changed] = [...(await tableRows(target, 'accounts')).keys()].sort();
    const table = `"${target.schema}"."accounts"`;
    await query(target, `DELETE FROM ${table} WHERE oid = $1`, [gone]);
    const changeBalance =
      target.dialect === 'cratedb'
        ? `UPDATE ${table} SET data['balance'] = -12345 WHERE oid = $1`
        : `UPDATE ${table} SET data = jsonb_set(data, '{balance}', '-12345') WHERE oid = $1`;
    await query(target, changeBalance, [changed]);
    const bad = await runCli(verifyArgs(database, 'accounts'));
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(new RegExp(`1 missing, 0 extra, 1 different`));
    expect(bad.stdout).toMatch(new RegExp(`missing in the table: ${gone}`));
    expect(bad.stdout).toMatch(new RegExp(`different: ${changed} \\(balance\\)`));

    await query(target, `INSERT INTO ${table} (oid, data) VALUES ('stray', $1)`, [
      JSON.stringify({ _id: 'stray' }),
    ]);
    const json = await runCli(verifyArgs(database, 'accounts', '--json'));
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as Document;
    expect(report).toMatchObject({
      ok: false,
      missing: { count: 1 },
      different: { count: 1 },
      extra: { count: 1, first: ['stray'] },
    });
  }, 120_000);

  it('says so when the collection or the table does not exist', async () => {
    const database = mongo.database('noverify');
    await client.db(database).createCollection('c');
    const noTable = await runCli(verifyArgs(database, 'c'));
    expect(noTable.code).toBe(2);
    expect(noTable.stderr).toMatch(/table .*\.c does not exist on the target/);
    const noCollection = await runCli(verifyArgs(database, 'nothere'));
    expect(noCollection.code).toBe(2);
    expect(noCollection.stderr).toMatch(/collection .*\.nothere does not exist/);
  });
});

describe.runIf(!process.env.TEST_MONGODB_URL)('resume demonstration', () => {
  it('bank resumeCounter values all match after the relay is killed and restarted several times', async () => {
    const database = mongo.database('resumedemo');
    const init = await workload(
      database,
      'demo',
      '--scenario',
      'bank',
      '--init',
      '--reset',
      '--ops',
      '1',
      '--rate',
      '0',
    );
    expect(init.code, init.stderr).toBe(0);
    const args = [
      'cdc-relay',
      ...relayArgs(servers, database, '--collection', 'demo', '--batch-size', '200'),
    ];
    const running = workload(
      database,
      'demo',
      '--scenario',
      'bank',
      '--mix',
      'update=90,insert=5,delete=5',
      '--duration',
      '8s',
      '--rate',
      '800',
      '--concurrency',
      '4',
    );
    for (let i = 0; i < 3; i++) {
      const relay = spawnRelay(args);
      await relay.waitForOutput(/streaming|resuming/, 30_000);
      await new Promise((r) => setTimeout(r, 700));
      relay.child.kill('SIGKILL');
      await relay.exited;
    }
    expect((await running).code).toBe(0);
    const last = spawnRelay(args);
    try {
      const result = await runCli(verifyArgs(database, 'demo', '--wait', '60s'));
      expect(result.code, result.stdout).toBe(0);
      const counters = new Map(
        (
          await client
            .db(database)
            .collection('demo')
            .find({}, { projection: { resumeCounter: 1 } })
            .toArray()
        ).map((d) => [d._id.toHexString(), d.resumeCounter]),
      );
      const rows = await tableRows(target, 'demo');
      expect([...counters.values()].some((n) => n > 0)).toBe(true);
      for (const [oid, counter] of counters)
        expect((rows.get(oid) as Document).resumeCounter, oid).toBe(counter);
    } finally {
      last.child.kill('SIGTERM');
      await last.exited;
    }
  }, 180_000);
});
