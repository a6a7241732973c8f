// Once per test run, for the test projects that write to PostgreSQL or to TEST_TARGET_URL: one
// embedded PostgreSQL for every test file (each file gets its own database from
// createTestTarget), stopped and removed when the run ends, also on failure; or the dialect of
// the real server at TEST_TARGET_URL.
import type { TestProject } from 'vitest/node';
import { PostgresServer } from './postgres.js';
import { detectDialect } from './target.js';

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  const external = process.env.TEST_TARGET_URL;
  if (external) {
    project.provide('target', {
      dialect: await detectDialect(external),
      adminUrl: external,
      external: true,
    });
    return;
  }
  const server = await PostgresServer.start();
  project.provide('target', { dialect: 'postgres', adminUrl: server.url(), external: false });
  return () => server.stop();
}
