// db-workload: scenarios whose counts add up and reproduce from their seed, the rate it holds,
// and bad input. It writes to MongoDB only, so it runs once, not once per target.
import { describe, expect, it } from 'vitest';
import { EJSON } from 'bson';
import { MongoHarness } from '../support/mongo/index.js';
import { client, mongo, runCli, runWorkload, useSource } from '../support/relay.js';

useSource();

function workload(database: string, collection: string, ...args: string[]) {
  return runWorkload(mongo, database, collection, ...args);
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
