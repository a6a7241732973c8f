// cdc-relay when things go wrong: the relay killed, cursors killed, connections dropped, the
// target down, writes during the snapshot, history lost, and bad input.
import { describe, expect, it } from 'vitest';
import { ObjectId, type Collection, type Document } from 'mongodb';
import { EJSON } from 'bson';
import { MongoHarness } from '../support/mongo/index.js';
import { freePort } from '../support/postgres.js';
import { canStopTarget, refusals, runTarget, startOwnTarget } from '../support/target.js';
import {
  expectConverges,
  query,
  relayArgs as serverRelayArgs,
  rowCount,
  client,
  mongo,
  servers,
  target,
  useServers,
  runCli,
  spawnRelay,
  startRelay,
  tableExists,
  tableRows,
  waitFor,
} from '../support/relay.js';

useServers();

/** Relay arguments with the target at `url` (this file's target, or a server of a test's own). */
function relayArgs(url: string, database: string, ...extra: string[]): string[] {
  return serverRelayArgs(servers, database, '--target-url', url, ...extra);
}

/**
 * A write once more if it failed: when every connection drops, the driver does not retry a
 * write in flight if its streaming monitor saw the drop first (the server is Unknown by then, so
 * not known to support retryable writes), as against a real server. A write whose first try
 * went through fails its second with a duplicate key, which is then its success.
 */
async function retried(write: () => Promise<unknown>): Promise<void> {
  await write().catch(() =>
    write().catch((error: { code?: number }) => {
      if (error.code !== 11000) throw error;
    }),
  );
}

/** Mixed writes on ids 0..keys-1 (insert, update, replace, delete), deterministic. */
async function churn(
  coll: Collection<Document>,
  operations: number,
  keys = 300,
  from = 0,
): Promise<void> {
  for (let i = from; i < from + operations; i++) {
    const id = (i * 7919) % keys;
    const write = (): Promise<unknown> => {
      switch (i % 5) {
        case 0:
        case 1:
          return coll.updateOne(
            { _id: id as never },
            { $set: { n: i, [`f${i % 3}`]: { at: new Date(i) } } },
            { upsert: true },
          );
        case 2:
          return coll.updateOne({ _id: id as never }, { $inc: { hits: 1 } as Document });
        case 3:
          return coll.replaceOne({ _id: id as never }, { n: i, replaced: true }, { upsert: true });
        default:
          return coll.deleteOne({ _id: id as never });
      }
    };
    await retried(write);
  }
}

describe.runIf(!process.env.TEST_MONGODB_URL)('faults', () => {
  it('converges after the relay process is SIGKILLed mid-stream and restarted', async () => {
    const database = mongo.database('kill');
    const coll = client.db(database).collection('k');
    await coll.insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i as never, n: i })));
    const args = relayArgs(
      target.url,
      database,
      '--collection',
      'k',
      '--batch-size',
      '50',
      '--progress-interval',
      '1',
    );
    const first = spawnRelay(['cdc-relay', ...args]);
    await first.waitForOutput(/streaming/);
    const writing = churn(coll, 3000);
    await waitFor(
      async () => (await tableRows(target, 'k')).size > 0 && /written [1-9]/.test(first.output()),
      'some events written',
      30_000,
    );
    first.child.kill('SIGKILL');
    expect(await first.exited).toBeNull();
    await writing;
    const second = spawnRelay(['cdc-relay', ...args]);
    try {
      await expectConverges(coll, target, 'k', 60_000);
      expect(second.output()).toMatch(/resuming from checkpoint/);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  }, 120_000);

  it('converges while the server kills cursors and drops connections mid-stream', async () => {
    const database = mongo.database('net');
    const coll = client.db(database).collection('n');
    await client.db(database).createCollection('n');
    const relay = await startRelay(
      relayArgs(target.url, database, '--collection', 'n', '--batch-size', '100'),
    );
    const writing = churn(coll, 2000);
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 150));
      if (i % 2 === 0) mongo.harness!.killChangeStreamCursors();
      else mongo.harness!.dropConnections();
    }
    mongo.harness!.failGetMore({ code: 10107, times: 2 });
    await writing;
    await expectConverges(coll, target, 'n', 60_000);
    await relay.stop();
  }, 120_000);

  it('recovers when every connection drops while the stream resumes, with a polling monitor', async () => {
    // Dropping every connection while the relay's stream waits in getMore makes the driver
    // resume; that aggregate's connection closes too. Against a server whose hello had no
    // topologyVersion (this harness before it had one) node-mongodb-native 7.9 polled and did not
    // reset its monitor on the stream's network error, so the monitor's next hello went to a
    // socket already destroyed whose 'close' had not run: the write returned false, no 'drain'
    // and no 'error' followed, and no server was selected again until the relay connected anew
    // (reconnectIfStuck, MONGO_STUCK_MS): about one run in eight. With a topologyVersion it is
    // reset first, and 90 runs of this scenario (streaming or polling) saw no hang. The relay here
    // polls (serverMonitoringMode=poll, as the driver does on FaaS platforms such as Cloud Run),
    // where a heartbeat timer firing inside that window could still hang the monitor.
    const database = mongo.database('stuck');
    const coll = client.db(database).collection('st');
    await client.db(database).createCollection('st');
    const relay = await startRelay([
      ...relayArgs(target.url, database, '--collection', 'st', '--batch-size', '100'),
      '--mongodb-url',
      `${mongo.url}&serverMonitoringMode=poll`,
    ]);
    const insert = async (from: number) => {
      for (let i = from; i < from + 50; i++)
        await retried(() => coll.insertOne({ _id: i as never, n: i }));
    };
    await insert(0);
    await waitFor(async () => (await tableRows(target, 'st')).size === 50, '50 rows', 30_000);
    mongo.harness!.failCommand('aggregate', { closeConnection: true, appName: 'relay' });
    mongo.harness!.dropConnections();
    await insert(100);
    await expectConverges(coll, target, 'st', 60_000);
    await relay.stop();
  }, 120_000);

  it('converges when inserts, updates and deletes run during the snapshot', async () => {
    const database = mongo.database('snap');
    const coll = client.db(database).collection('s');
    await coll.insertMany(
      Array.from({ length: 3000 }, (_, i) => ({ _id: i as never, n: i, pad: 'x'.repeat(200) })),
    );
    const relay = await startRelay(
      relayArgs(target.url, database, '--collection', 's', '--batch-size', '100'),
    );
    await churn(coll, 1500, 3500);
    await expectConverges(coll, target, 's', 60_000);
    const done = relay.stop();
    await done;
    expect((await relay.done).stats.snapshotDocs).toBeGreaterThan(0);
  }, 120_000);

  it('retries the snapshot after MongoDB connections drop mid-copy, after the last _id it wrote', async () => {
    const database = mongo.database('snapdrop');
    const coll = client.db(database).collection('d');
    await coll.insertMany(
      Array.from({ length: 4000 }, (_, i) => ({ _id: i as never, pad: 'y'.repeat(300) })),
    );
    const relay = await startRelay(
      relayArgs(target.url, database, '--collection', 'd', '--batch-size', '100'),
    );
    for (let i = 0; i < 3; i++) {
      await waitFor(
        async () => (await rowCount(target, 'd')) > i * 1000,
        `copy past ${i * 1000}`,
        30_000,
        20,
      );
      mongo.harness!.dropConnections();
    }
    await expectConverges(coll, target, 'd', 60_000);
    let ended = false;
    void relay.done.finally(() => (ended = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(ended).toBe(false);
    await relay.stop();
  }, 120_000);

  it('resumes an interrupted snapshot after its last _id, or from the start when _ids mix types', async () => {
    const database = mongo.database('resume_snap');
    const db = client.db(database);
    await db
      .collection('single')
      .insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i as never })));
    await db
      .collection('mixed')
      .insertMany([
        ...Array.from({ length: 50 }, (_, i) => ({ _id: i as never })),
        ...Array.from({ length: 20 }, (_, i) => ({ _id: `s${i}` as never })),
        ...Array.from({ length: 20 }, () => ({ _id: new ObjectId() })),
      ]);
    // A relay that stopped mid-copy left this checkpoint: rows up to _id 49 are (said to be) there.
    const tables = await startRelay(
      relayArgs(
        target.url,
        database,
        '--collection',
        'single',
        '--snapshot',
        'never',
        '--stream-id',
        'tables',
      ),
    );
    await tables.stop();
    const { operationTime } = await db.command({ ping: 1 });
    for (const collection of ['single', 'mixed']) {
      await query(
        target,
        `INSERT INTO "${target.schema}"."relay_checkpoints" (stream_id, position, snapshot, updated_at) VALUES ($1, $2, $3, now())`,
        [
          `interrupted-${collection}`,
          EJSON.stringify({ startAtOperationTime: operationTime }, { relaxed: false }),
          EJSON.stringify({ collections: { [collection]: { lastId: 49 } } }, { relaxed: false }),
        ],
      );
      const relay = await startRelay(
        relayArgs(
          target.url,
          database,
          '--collection',
          collection,
          '--stream-id',
          `interrupted-${collection}`,
          '--snapshot',
          'only',
        ),
      );
      await relay.done;
    }
    const single = await tableRows(target, 'single');
    expect(single.has('49')).toBe(false);
    expect(single.has('50')).toBe(true);
    expect(single.size).toBe(50);
    // CrateDB types data['_id'] by the first _id copied (a number): the others are refused.
    const others = (await db.collection('mixed').find().toArray())
      .filter((d) => typeof d._id !== 'number')
      .map((d) => String(d._id));
    const refused = refusals[target.dialect].refusesKindChanges ? others : [];
    await expectConverges(db.collection('mixed'), target, 'mixed', 20_000, refused);
  });

  it.runIf(canStopTarget())(
    'rides out the target being down for seconds: no loss, no duplicates, still running',
    async () => {
      const own = await startOwnTarget();
      try {
        const database = mongo.database('outage');
        const coll = client.db(database).collection('o');
        await client.db(database).createCollection('o');
        const relay = await startRelay(
          relayArgs(own.url, database, '--collection', 'o', '--schema', own.schema),
        );
        await churn(coll, 200);
        await expectConverges(coll, own, 'o');
        await own.down();
        await churn(coll, 400, 300, 200);
        await new Promise((r) => setTimeout(r, 3000));
        await own.up();
        await expectConverges(coll, own, 'o', 60_000);
        let ended = false;
        void relay.done.finally(() => (ended = true));
        await new Promise((r) => setTimeout(r, 200));
        expect(ended).toBe(false);
        await relay.stop();
      } finally {
        await own.cleanup();
      }
    },
    120_000,
  );

  it('stops with the documented message when its checkpoint fell off the oplog', async () => {
    const database = mongo.database('lost');
    const coll = client.db(database).collection('l');
    await coll.insertOne({ _id: 1 as never });
    const relay = await startRelay(relayArgs(target.url, database, '--collection', 'l'));
    await expectConverges(coll, target, 'l');
    await relay.stop();
    await coll.insertOne({ _id: 2 as never });
    mongo.harness!.discardHistory();
    const result = await runCli([
      'cdc-relay',
      ...relayArgs(target.url, database, '--collection', 'l'),
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/older than the oldest entry in MongoDB's oplog/);
    expect(result.stderr).toMatch(/--snapshot initial/);
    expect((await tableRows(target, 'l')).has('2')).toBe(false);
  });
});

describe('bad input', () => {
  it('refuses a standalone MongoDB with how to start a replica set', async () => {
    const standalone = await MongoHarness.start({ replicaSet: false });
    try {
      const result = await runCli([
        'cdc-relay',
        '--mongodb-url',
        standalone.url,
        '--database',
        'x',
        '--target-url',
        target.url,
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^relay: .*standalone.*replica set.*rs\.initiate\(\)/m);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await standalone.stop();
    }
  });

  it('says when MongoDB (after --mongodb-start-timeout) or the target cannot be reached', async () => {
    const port = await freePort();
    const noMongo = await runCli([
      'cdc-relay',
      '--mongodb-url',
      `mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=300`,
      '--database',
      'x',
      '--target-url',
      target.url,
      '--mongodb-start-timeout',
      '1s',
    ]);
    expect(noMongo.code).toBe(1);
    expect(noMongo.stderr).toMatch(
      /^relay: cannot reach MongoDB at mongodb:\/\/127\.0\.0\.1:\d+\/\S*: .*; gave up after \d+\.\ds \(--mongodb-start-timeout\)$/m,
    );
    const noTarget = await runCli([
      'cdc-relay',
      '--mongodb-url',
      mongo.url,
      '--database',
      'x',
      '--target-url',
      `postgresql://u:secret@127.0.0.1:${port}/db`,
      '--target-start-timeout',
      '1s',
    ]);
    expect(noTarget.code).toBe(1);
    expect(noTarget.stderr).toMatch(
      /^relay: cannot reach the target at postgresql:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/db: .*ECONNREFUSED.*; gave up after \d+\.\ds \(--target-start-timeout\)$/m,
    );
    expect(noTarget.stderr).not.toMatch(/secret/);
  });

  // The embedded PostgreSQL checks passwords and database names; the CrateDB harness, like a
  // CrateDB with trust authentication, takes any.
  it.runIf(runTarget().dialect === 'postgres' && !runTarget().external)(
    'gives up at once, with no start timeout, when the target refuses the password or the database',
    async () => {
      const wrongPassword = new URL(target.url);
      wrongPassword.password = 'wrong';
      const noDatabase = new URL(target.url);
      noDatabase.pathname = '/no_such_database';
      for (const [url, error] of [
        [wrongPassword, /password authentication failed/],
        [noDatabase, /database "no_such_database" does not exist/],
      ] as const) {
        const started = Date.now();
        const result = await runCli([
          'cdc-relay',
          '--mongodb-url',
          mongo.url,
          '--database',
          'x',
          '--target-url',
          url.toString(),
        ]);
        expect(result.code).toBe(1);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        expect(result.stderr).toMatch(/^relay: cannot reach the target at postgresql:/);
        expect(result.stderr).toMatch(error);
        expect(result.stderr).not.toMatch(/gave up/);
        expect(Date.now() - started).toBeLessThan(20_000);
      }
    },
  );

  it('waits for a MongoDB unreachable at start until stopped, and exits 0 at once on SIGTERM', async () => {
    const port = await freePort();
    const relay = spawnRelay([
      'cdc-relay',
      '--mongodb-url',
      `mongodb://127.0.0.1:${port}/?serverSelectionTimeoutMS=300`,
      '--database',
      'x',
      '--target-url',
      target.url,
      '--schema',
      target.schema,
      '--log-level',
      'debug',
    ]);
    try {
      await relay.waitForOutput(/MongoDB unavailable \(.*\); retrying with backoff/);
      // Several tries later it still waits: no deadline without --mongodb-start-timeout.
      await relay.waitForOutput(/MongoDB still unavailable[\s\S]*MongoDB still unavailable/);
      expect(relay.child.exitCode).toBeNull();
    } finally {
      relay.child.kill('SIGTERM');
    }
    const stoppedAt = Date.now();
    expect(await relay.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect(relay.output()).toMatch(/stopped before MongoDB answered; nothing was read or written/);
  });

  it('refuses a wrong dialect, bad filters and numbers, writing nothing', async () => {
    const database = mongo.database('bad');
    const base = [
      '--mongodb-url',
      mongo.url,
      '--database',
      database,
      '--target-url',
      target.url,
      '--schema',
      `${target.schema}`,
    ];
    const cases: [string[], RegExp][] = [
      [
        ['--dialect', target.dialect === 'cratedb' ? 'postgres' : 'cratedb'],
        /--dialect .* was given, but the target is/,
      ],
      [['--filter', '[{"$match": '], /--filter is not valid JSON/],
      [['--filter', '{"match": {}}'], /--filter must be pipeline stages/],
      [['--batch-size', '0'], /--batch-size must be a whole number of at least 1/],
      [['--batch-size', '100001'], /--batch-size must be at most 100000 .*, not 100001/],
      [
        ['--collection', 'a', '--collection', 'b', '--table', 't'],
        /--table names the table of a single collection/,
      ],
    ];
    for (const [extra, message] of cases) {
      const result = await runCli(['cdc-relay', ...base, ...extra]);
      expect(result.code, extra.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    const badChoice = await runCli(['cdc-relay', ...base, '--snapshot', 'sometimes']);
    expect(badChoice.code).toBe(1);
    expect(badChoice.stderr).toMatch(/Allowed choices are initial, never, only/);
    const missing = await runCli(['cdc-relay', '--database', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--mongodb-url \(or MONGODB_URL\) is required/);
    if (!target.external) expect(await tableExists(target, 'nope')).toBe(false);
    const checkpoints = await query(
      target,
      `SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'nope'`,
      [target.schema],
    );
    expect(Number(checkpoints[0]!.n)).toBe(0);
  });

  it('refuses an invalid --filter that is valid JSON but not a valid stage', async () => {
    const database = mongo.database('badfilter');
    await client.db(database).createCollection('f');
    const result = await runCli([
      'cdc-relay',
      '--mongodb-url',
      mongo.url,
      '--database',
      database,
      '--collection',
      'f',
      '--target-url',
      target.url,
      '--schema',
      target.schema,
      '--snapshot',
      'never',
      '--filter',
      '[{"$nonsense": {}}]',
      '--stream-id',
      'badfilter',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--filter is not a valid pipeline/);
  });
});
