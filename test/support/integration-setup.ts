// Setup of every integration test file: applies test/support/known-cratedb-failures.ts when the
// run's target is CrateDB. A listed test that fails passes; one that passes fails, and so does a
// listed name that no longer exists.
import { afterAll, afterEach, type RunnerTask } from 'vitest';
import { knownCrateDbFailures } from './known-cratedb-failures.js';
import { runTarget } from './target.js';

const LIST = 'test/support/known-cratedb-failures.ts';
const applies = runTarget().dialect === 'cratedb' && !process.env.RELAY_SHOW_KNOWN_FAILURES;

if (applies) {
  afterEach(({ task }) => {
    if (!(task.fullName in knownCrateDbFailures)) return;
    if (task.result?.state === 'fail') {
      // vitest flips the result of a test marked `fails` once its hooks have run (it.fails).
      (task as { fails?: boolean }).fails = true;
      return;
    }
    throw new Error(`passes on CrateDB now: remove "${task.fullName}" from ${LIST}`);
  });

  // vitest reads the first parameter as fixtures and insists on a destructuring pattern.
  // eslint-disable-next-line no-empty-pattern
  afterAll(({}, suite) => {
    const names = new Set<string>();
    const collect = (task: RunnerTask) => {
      if (task.type === 'test') names.add(task.fullName);
      else if ('tasks' in task) task.tasks.forEach(collect);
    };
    collect(suite);
    const prefix = `${suite.fullName} > `;
    const stale = Object.keys(knownCrateDbFailures).filter(
      (name) => name.startsWith(prefix) && !names.has(name),
    );
    if (stale.length) throw new Error(`${LIST} names tests that do not exist: ${stale.join('; ')}`);
  });
}
