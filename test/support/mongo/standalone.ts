// `npm run mongo-harness -- --port 27018`: the harness as its own process, for benchmarks and
// manual trials. Prints `ready <url>` once it accepts connections; runs until SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { MongoHarness } from './server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '27018' },
    host: { type: 'string', default: '127.0.0.1' },
    standalone: { type: 'boolean', default: false },
    'noop-interval-ms': { type: 'string', default: '10000' },
    version: { type: 'string' },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be a TCP port number, not "${values.port}"`);
  process.exit(2);
}

const noopIntervalMs = Number(values['noop-interval-ms']);
if (!Number.isInteger(noopIntervalMs) || noopIntervalMs < 0) {
  console.error(
    `--noop-interval-ms must be a whole number of milliseconds (0: off), not "${values['noop-interval-ms']}"`,
  );
  process.exit(2);
}

const harness = await MongoHarness.start({
  port,
  host: values.host,
  replicaSet: !values.standalone,
  noopIntervalMs,
  ...(values.version ? { version: values.version } : {}),
}).catch((error: unknown) => {
  console.error((error as Error).message);
  process.exit(2);
});
process.stdout.write(`ready ${harness.url}\n`);

const shutdown = () => {
  void harness.stop().then(() => process.exit(0));
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
