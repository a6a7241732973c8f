// db-workload and verify: scenarios that reproduce from their seed, and the full loop a user runs
// to prove that nothing was lost (relay + workload + verify), including relay crashes.
import { describe, expect, it } from 'vitest';
import { EJSON } from 'bson';
import type { Document, MongoClient } from 'mongodb';
import { MongoHarness, type TestMongo } from '../support/mongo/index.js';
import type { TestTarget } from '../support/target.js';
import {
  query,
  relayArgs,
  runCli,
  spawnRelay,
  startRelay,
  tableRows,
  useServers,
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

function workload(database: string, collection: string, ...args: string[]) {
  return runCli([
    'db-workload',
    '--mongodb-url',
    mongo.url,
    '--database',
    database,
    '--collection',
    collection,
    ...args,
  ]);
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

async function snapshotOf(database: string, collection: string): Promise<string[]> {
  const docs = await client
    .db(database)
    .collection(collection)
    .find({}, { sort: { _id: 1 } })
    .toArray();
  return docs.map((d) => EJSON.stringify(d, { relaxed: false }));
}

describe('db-workload', () => {
  it.each(['bank', 'ticker', 'sensor'])(
    '%s: counts add up and the seed reproduces the documents',
    async (scenario) => {
      const database = mongo.database(scenario);
      const runs = [];
      // Every operation the summary counts must reach the change stream as one event.
      const stream = client.db(database).collection('a').watch([], { maxAwaitTimeMS: 200 });
      await stream.tryNext();
      for (const collection of ['a', 'b']) {
        const result = await workload(
          database,
          collection,
          '--scenario',
          scenario,
          '--ops',
          '1500',
          '--rate',
          '0',
          '--concurrency',
          '3',
          '--seed',
          '7',
          '--reset',
          '--init',
        );
        expect(result.code, result.stderr).toBe(0);
        runs.push(result.stderr);
      }
      const seen: Record<string, number> = {};
      for (let event = await stream.tryNext(); event; event = await stream.tryNext()) {
        seen[event.operationType] = (seen[event.operationType] ?? 0) + 1;
      }
      await stream.close();
      const summary =
        /loaded (\d+) starting documents; (\d+) operations .*: insert (\d+), update (\d+), replace (\d+), delete (\d+); errors 0/.exec(
          runs[0]!,
        );
      expect(summary, runs[0]).not.toBeNull();
      const [, loaded, total, inserts, updates, replaces, deletes] = summary!.map(Number);
      expect(inserts! + updates! + replaces! + deletes!).toBe(total);
      expect(total).toBe(1500);
      expect(seen.insert ?? 0).toBe(loaded! + inserts!);
      expect(seen.update ?? 0).toBe(updates);
      expect(seen.replace ?? 0).toBe(replaces);
      expect(seen.delete ?? 0).toBe(deletes);
      expect(await client.db(database).collection('a').countDocuments()).toBe(
        loaded! + inserts! - deletes!,
      );
      // Same seed, same work: the summaries differ only in collection name and timing (and a
      // slow machine prints progress lines every 5 s, in one run and not the other).
      const normalized = (text: string) =>
        text
          .split('\n')
          .filter((line) => !/ ops, \d+\/s, /.test(line))
          .join('\n')
          .replace(/\.[ab]: /, ': ')
          .replace(/in [\d.]+s \(\d+\/s\)/, '');
      expect(normalized(runs[1]!)).toBe(normalized(runs[0]!));
      expect(await snapshotOf(database, 'b')).toEqual(await snapshotOf(database, 'a'));
    },
    120_000,
  );

  it('--init twice adds nothing twice (a restarted workload container)', async () => {
    const database = mongo.database('reinit');
    // The same seeded start twice: the second run finds every starting document there already.
    const sensorInit = (...extra: string[]) =>
      workload(
        database,
        's',
        '--scenario',
        'sensor',
        '--init',
        '--ops',
        '1',
        '--rate',
        '0',
        ...extra,
      );
    const first = await sensorInit();
    expect(first.code, first.stderr).toBe(0);
    const again = await sensorInit('--mix', 'update=1');
    expect(again.code, again.stderr).toBe(0);
    // Nothing new was loaded, so the summary mentions no starting documents.
    expect(again.stderr).not.toMatch(/loaded \d+ starting documents/);
    expect(first.stderr).toMatch(/loaded 1000 starting documents/);
    expect(await client.db(database).collection('s').countDocuments()).toBe(1001);
  });

  it('holds the requested rate', async () => {
    const database = mongo.database('rate');
    const started = Date.now();
    const result = await workload(
      database,
      'r',
      '--scenario',
      'sensor',
      '--ops',
      '100',
      '--rate',
      '50',
      '--concurrency',
      '2',
    );
    const seconds = (Date.now() - started) / 1000;
    expect(result.code, result.stderr).toBe(0);
    // 100 operations at 50/s take about two seconds, never much less.
    expect(seconds).toBeGreaterThan(1.8);
    expect(seconds).toBeLessThan(6);
  });

  it('refuses bad input with one sentence', async () => {
    const database = mongo.database('badwl');
    const cases: [string[], RegExp][] = [
      [['--scenario', 'casino'], /--scenario must be one of bank, ticker, sensor/],
      [['--mix', 'insert=40,upsert=5'], /--mix must be like insert=40/],
      [['--ops', '10', '--duration', '5s'], /give --ops or --duration, not both/],
      [['--duration', 'soon'], /--duration must be a duration such as 30s/],
    ];
    for (const [args, message] of cases) {
      const result = await workload(database, 'x', ...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    const standalone = await MongoHarness.start({ replicaSet: false });
    try {
      const result = await runCli([
        'db-workload',
        '--mongodb-url',
        standalone.url,
        '--database',
        'x',
        '--collection',
        'y',
        '--ops',
        '1',
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/standalone server, and change streams need a replica set/);
    } finally {
      await standalone.stop();
    }
  });
});

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
