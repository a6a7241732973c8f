// The CLI from source, for tests that need a real process (SIGKILL, signals, exit codes).
import { main } from '../../src/cli.js';

process.exitCode = await main(process.argv);
