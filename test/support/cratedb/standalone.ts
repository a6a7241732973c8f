// `npm run cratedb-harness -- --port N [--version 5.10.16] [--refresh-interval-ms 1000]`:
// the CrateDB harness as a process, for replaying data into it by hand. Prints one line
// `ready <url>` once it accepts connections and runs until SIGTERM/SIGINT.
import { Command, InvalidArgumentError } from 'commander';
import { CrateHarness } from './index.js';

function integer(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number');
  return n;
}

const options = new Command('cratedb-harness')
  .description('A CrateDB stand-in speaking the PostgreSQL wire protocol, data in memory.')
  .option('--port <n>', 'port to listen on (0: any free port)', integer, 5432)
  .option('--version <x.y.z>', 'CrateDB version to behave as', '5.10.16')
  .option('--refresh-interval-ms <ms>', 'periodic refresh interval', integer, 1000)
  .parse()
  .opts<{ port: number; version: string; refreshIntervalMs: number }>();

try {
  const harness = await CrateHarness.start(options);
  process.stdout.write(`ready ${harness.url()}\n`);
  const shutdown = () => {
    void harness.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
} catch (error) {
  process.stderr.write(`cratedb-harness: ${(error as Error).message}\n`);
  process.exit(1);
}
