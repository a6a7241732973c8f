// The MongoDB a test talks to: the in-process harness, or a real replica set at TEST_MONGODB_URL.
import { randomBytes } from 'node:crypto';
import { MongoHarness } from './server.js';

export { MongoHarness } from './server.js';

export interface TestMongo {
  url: string;
  /** Present only with the harness: fault injection is not available on a real server. */
  harness?: MongoHarness;
  /** A database name no other test uses. */
  database(prefix?: string): string;
  stop(): Promise<void>;
}

export async function startMongo(): Promise<TestMongo> {
  const database = (prefix = 'relay') => `${prefix}_${randomBytes(4).toString('hex')}`;
  const external = process.env.TEST_MONGODB_URL;
  if (external) return { url: external, database, stop: async () => {} };
  const harness = await MongoHarness.start();
  return { url: harness.url, harness, database, stop: () => harness.stop() };
}
