import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';

// The integration suite runs once per target: the embedded PostgreSQL and the in-process CrateDB
// harness (one per test file), or only the real server at TEST_TARGET_URL, whose dialect the
// global setup asks.
function integration(
  name: string,
  test: TestProjectInlineConfiguration['test'],
): TestProjectInlineConfiguration {
  return {
    extends: true,
    test: {
      name,
      include: ['test/integration/**/*.test.ts'],
      setupFiles: ['test/support/integration-setup.ts'],
      ...test,
    },
  };
}

const targets = process.env.TEST_TARGET_URL
  ? [integration('target', { globalSetup: ['test/support/global-setup.ts'] })]
  : [
      integration('postgres', { globalSetup: ['test/support/global-setup.ts'] }),
      integration('cratedb', { provide: { target: { dialect: 'cratedb', external: false } } }),
    ];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start servers and processes; two cores want few files at once.
    maxWorkers: 2,
    projects: [
      // Tests that write to no target of the run's choosing run once: unit tests, the harnesses'
      // conformance tests, commands that talk to MongoDB only, and the CrateDB writer tests
      // (which start a CrateDB harness of a given version themselves).
      {
        extends: true,
        test: {
          name: 'once',
          include: [
            'test/unit/**/*.test.ts',
            'test/harness/**/*.test.ts',
            'test/source/**/*.test.ts',
            'test/cratedb/**/*.test.ts',
          ],
        },
      },
      ...targets,
    ],
  },
});
