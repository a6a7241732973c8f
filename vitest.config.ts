import { defineConfig } from 'vitest/config';

// The integration suite runs once per target: the embedded PostgreSQL and the in-process CrateDB
// harness, or only the real server at TEST_TARGET_URL (its dialect is asked at the start).
const integration = {
  include: ['test/integration/**/*.test.ts'],
  setupFiles: ['test/support/integration-setup.ts'],
};

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start servers and processes; two cores want few files at once.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/harness/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          ...integration,
          name: process.env.TEST_TARGET_URL ? 'target' : 'postgres',
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});
