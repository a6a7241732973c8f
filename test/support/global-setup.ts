// Once per test run: one embedded PostgreSQL for every test file (each file gets its own
// database from createTestTarget), stopped and removed when the run ends, also on failure.
import type { TestProject } from 'vitest/node';
import { PostgresServer } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TEST_TARGET_URL) {
    project.provide('postgresAdminUrl', process.env.TEST_TARGET_URL);
    return async () => {};
  }
  const server = await PostgresServer.start();
  project.provide('postgresAdminUrl', server.url());
  return () => server.stop();
}
