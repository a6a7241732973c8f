// `relay verify`: does the table hold exactly the collection, converted as the relay converts it?
// Exit 0 only when it does; with --wait, keeps checking while writes may still be in flight.
import type { VerifySettings } from '../config.js';
import { ConfigError } from '../errors.js';
import { connectMongo } from '../mongo/connect.js';
import { listCollections } from '../mongo/snapshot.js';
import { connectTarget } from '../target/connect.js';
import { tableExists } from '../target/sql.js';
import { reportText, verify, type VerifyReport } from '../verify.js';

export async function verifyCommand(
  settings: VerifySettings,
  out: NodeJS.WritableStream = process.stdout,
): Promise<VerifyReport> {
  const target = await connectTarget(settings.targetUrl, settings.dialect);
  try {
    const client = await connectMongo(settings.mongodbUrl, { requireChangeStreams: false });
    try {
      const schema = settings.schema ?? target.dialect.defaultSchema;
      const table = settings.table ?? target.dialect.tableName(settings.collection);
      if (!(await listCollections(client, settings.database)).includes(settings.collection)) {
        throw new ConfigError(
          `collection ${settings.database}.${settings.collection} does not exist`,
        );
      }
      if (!(await tableExists(target.db, schema, table))) {
        throw new ConfigError(
          `table ${schema}.${table} does not exist on the target; check --schema and --table`,
        );
      }
      const options = {
        database: settings.database,
        collection: settings.collection,
        schema,
        table,
        chunkBytes: Math.max(1, Math.floor(settings.batchBytes / 2)),
      };
      const deadline = Date.now() + settings.waitMs;
      let report = await verify(client, target.db, target.dialect, options);
      while (!report.ok && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        report = await verify(client, target.db, target.dialect, options);
      }
      out.write(settings.json ? `${JSON.stringify(report)}\n` : `${reportText(report)}\n`);
      return report;
    } finally {
      await client.close().catch(() => {});
    }
  } finally {
    await target.close();
  }
}
