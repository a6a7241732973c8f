// Commander wiring only: options (each with its environment twin; flags win) and which command
// function runs. Command modules load when their command runs, so the relay never loads faker. Behaviour lives in src/commands/, validation in src/config.ts.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { applyConfigFile } from './config-file.js';
import {
  deadLetterSettings,
  relaySettings,
  statusSettings,
  replaySettings,
  tailSettings,
  verifySettings,
  workloadSettings,
} from './config.js';
import { SCENARIOS } from './workload/scenarios.js';
import { ConfigError, RelayError, errorMessage } from './errors.js';
import { redact } from './log.js';

const collect = (value: string, previous: string[] = []) => [
  ...previous,
  ...value.split(',').map((v) => v.trim()),
];

/**
 * A switch whose environment twin is read by value: commander would turn any defined variable
 * into true, so WORKLOAD_RESET=false would reset. `--reset` alone is true.
 */
function switchOption(flags: string, description: string, env: string): Option {
  return new Option(`${flags} [yes|no]`, description).env(env).argParser((value: string) => {
    if (/^(1|true|yes|on)$/i.test(value)) return true;
    if (/^(0|false|no|off|)$/i.test(value)) return false;
    throw new InvalidArgumentError(`expected yes/no, true/false, 1/0 or on/off, not "${value}"`);
  });
}

function sourceOptions(
  command: Command,
  { collectionRequired = false, filter = true } = {},
): Command {
  command
    .addOption(
      new Option('--mongodb-url <url>', 'MongoDB connection string (a replica set)').env(
        'MONGODB_URL',
      ),
    )
    .addOption(new Option('--database <name>', 'source database').env('MONGODB_DATABASE'))
    .addOption(
      new Option(
        '--collection <name>',
        collectionRequired
          ? 'source collection'
          : 'source collection (repeatable; omit for the whole database)',
      )
        .env('MONGODB_COLLECTION')
        .argParser(collect),
    );
  if (filter) {
    command.addOption(
      new Option(
        '--filter <json>',
        'change-stream pipeline stages appended to the relay’s own, as JSON',
      ).env('CHANGE_STREAM_FILTER'),
    );
  }
  return command;
}

function targetOptions(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--target-url <url>',
        'target, as postgresql:// URL (CrateDB: postgresql://crate@host:5432/doc)',
      ).env('TARGET_URL'),
    )
    .addOption(
      new Option('--dialect <dialect>', 'target dialect; auto asks the server')
        .choices(['auto', 'cratedb', 'postgres'])
        .default('auto')
        .env('TARGET_DIALECT'),
    )
    .addOption(
      new Option(
        '--schema <name>',
        'target schema (default: doc on CrateDB, public on PostgreSQL)',
      ).env('TARGET_SCHEMA'),
    )
    .addOption(
      new Option('--table <name>', 'target table (default: the collection name)').env(
        'TARGET_TABLE',
      ),
    );
}

/** One bound on memory for every command that holds documents (README: Memory). */
function batchBytesOption(): Option {
  return new Option(
    '--batch-bytes <size>',
    'most bytes of documents held at once, e.g. 64MiB, 500KB (README: Memory)',
  )
    .default('8MiB')
    .env('BATCH_BYTES');
}

function batchOptions(command: Command): Command {
  return command
    .addOption(new Option('--batch-size <n>', 'events per batch').default('1000').env('BATCH_SIZE'))
    .addOption(batchBytesOption())
    .addOption(
      new Option('--batch-wait-ms <ms>', 'longest wait for more events after the first of a batch')
        .default('100')
        .env('BATCH_WAIT_MS'),
    )
    .addOption(
      new Option('--object-policy <policy>', 'CrateDB column policy of the data OBJECT')
        .choices(['dynamic', 'ignored'])
        .default('dynamic')
        .env('OBJECT_POLICY'),
    )
    .addOption(
      new Option('--on-error <mode>', 'a row the target rejects: dead-letter it, or stop')
        .choices(['dlq', 'fail'])
        .default('dlq')
        .env('ON_ERROR'),
    )
    .addOption(
      new Option(
        '--stream-id <id>',
        'checkpoint key (default: source namespace and target table)',
      ).env('STREAM_ID'),
    )
    .addOption(
      new Option('--log-level <level>', 'log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info')
        .env('LOG_LEVEL'),
    );
}

/** What a command reports besides errors: verify exits 1 when the table differs. */
export interface Outcome {
  exitCode: number;
}

export function buildProgram(outcome: Outcome = { exitCode: 0 }): Command {
  const program = new Command('relay')
    .description(
      'Change-data-capture relay: MongoDB change streams into CrateDB and PostgreSQL tables.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for the options)');

  const relayCommand = program
    .command('cdc-relay')
    .description(
      'keep target tables in step with MongoDB collections: snapshot, then stream, resumably',
    );
  sourceOptions(relayCommand);
  targetOptions(relayCommand);
  batchOptions(relayCommand)
    .addOption(
      new Option(
        '--snapshot <mode>',
        'initial copy when there is no checkpoint: initial, never, or only (copy and exit)',
      )
        .choices(['initial', 'never', 'only'])
        .default('initial')
        .env('SNAPSHOT_MODE'),
    )
    .addOption(
      new Option(
        '--full-document <mode>',
        'how updates are read: the looked-up document, the post-image, or a patch',
      )
        .choices(['updateLookup', 'whenAvailable', 'required', 'patch'])
        .default('updateLookup')
        .env('FULL_DOCUMENT'),
    )
    .addOption(
      new Option(
        '--on-drop <mode>',
        'when a collection is dropped or renamed: ignore, truncate, or drop its table',
      )
        .choices(['ignore', 'truncate', 'drop'])
        .default('ignore')
        .env('ON_DROP'),
    )
    .addOption(
      new Option(
        '--metrics-port <port>',
        'serve Prometheus /metrics and /healthz on this port',
      ).env('METRICS_PORT'),
    )
    .addOption(
      new Option(
        '--mongodb-start-timeout <duration>',
        'at start, how long to wait for an unreachable MongoDB, e.g. 5m (default: until stopped)',
      ).env('MONGODB_START_TIMEOUT'),
    )
    .addOption(
      new Option(
        '--target-start-timeout <duration>',
        'at start, how long to wait for an unreachable target, e.g. 5m (default: until stopped)',
      ).env('TARGET_START_TIMEOUT'),
    )
    .addOption(
      new Option('--progress-interval <seconds>', 'seconds between progress lines on stderr')
        .default('5')
        .env('PROGRESS_INTERVAL'),
    )
    .action(async (options) => {
      const { cdcRelay } = await import('./commands/cdc-relay.js');
      await cdcRelay(relaySettings(options));
    });

  const tailCommand = program
    .command('tail')
    .description(
      'print change events live, as canonical Extended JSON lines (input for replay) or readable lines',
    );
  sourceOptions(tailCommand)
    .addOption(
      new Option(
        '--format <format>',
        'ejson: one canonical Extended JSON event per line; pretty: a short line each',
      )
        .choices(['ejson', 'pretty'])
        .default('ejson')
        .env('TAIL_FORMAT'),
    )
    .addOption(
      new Option(
        '--operation <type>',
        'only these operation types (repeatable: insert, update, replace, delete, …)',
      )
        .argParser(collect)
        .env('TAIL_OPERATIONS'),
    )
    .addOption(
      new Option('--full-document <mode>', 'full-document mode of the stream')
        .choices(['updateLookup', 'whenAvailable', 'required', 'patch'])
        .default('updateLookup')
        .env('FULL_DOCUMENT'),
    )
    .addOption(new Option('--limit <n>', 'stop after this many events').env('TAIL_LIMIT'))
    .action(async (options) => {
      const { tail } = await import('./commands/tail.js');
      await tail(tailSettings(options));
    });

  const replayCommand = program
    .command('replay')
    .description(
      'apply change events from a file of canonical Extended JSON lines (what tail prints) to a target',
    )
    .argument('<file>', 'JSON-lines file of change events; - for standard input');
  targetOptions(replayCommand);
  batchOptions(replayCommand).action(async (file: string, options) => {
    const { replay } = await import('./commands/replay.js');
    await replay(replaySettings(file, options));
  });

  const workloadCommand = program
    .command('db-workload')
    .description(
      'seeded, rate-limited inserts, updates, replaces and deletes on one collection, to exercise the relay',
    );
  sourceOptions(workloadCommand, { collectionRequired: true, filter: false })
    .addOption(
      new Option(
        '--scenario <name>',
        Object.values(SCENARIOS)
          .map((s) => `${s.name}: ${s.description}`)
          .join('; '),
      )
        .default('bank')
        .env('WORKLOAD_SCENARIO'),
    )
    .addOption(
      new Option('--ops <n>', 'stop after this many operations (default: run until stopped)').env(
        'WORKLOAD_OPS',
      ),
    )
    .addOption(
      new Option('--duration <time>', 'stop after this long: 30s, 5m, 1h').env('WORKLOAD_DURATION'),
    )
    .addOption(
      new Option(
        '--rate <ops/s>',
        'operations per second over all workers; 0 for as fast as possible',
      )
        .default('500')
        .env('WORKLOAD_RATE'),
    )
    .addOption(
      new Option('--concurrency <n>', 'parallel workers').default('4').env('WORKLOAD_CONCURRENCY'),
    )
    .addOption(
      new Option(
        '--mix <weights>',
        'operation weights, e.g. insert=40,update=40,replace=10,delete=10 (default: per scenario)',
      ).env('WORKLOAD_MIX'),
    )
    .addOption(
      new Option('--seed <n>', 'seed: the same seed writes the same documents')
        .default('42')
        .env('WORKLOAD_SEED'),
    )
    .addOption(switchOption('--reset', 'drop and recreate the collection first', 'WORKLOAD_RESET'))
    .addOption(
      switchOption(
        '--init',
        "load the scenario's starting documents first (again: adds none twice)",
        'WORKLOAD_INIT',
      ),
    )
    .action(async (options) => {
      const { dbWorkload } = await import('./commands/db-workload.js');
      const summary = await dbWorkload(workloadSettings(options));
      if (summary.errors > 0)
        throw new RelayError(`${summary.errors} operations failed; first: ${summary.firstError}`);
    });

  const verifyCmd = program
    .command('verify')
    .description(
      'compare a collection with its table, content and count; exit 1 with the differences listed',
    );
  sourceOptions(verifyCmd, { collectionRequired: true, filter: false });
  targetOptions(verifyCmd)
    .addOption(batchBytesOption())
    .addOption(switchOption('--json', 'print the report as JSON', 'VERIFY_JSON'))
    .addOption(
      new Option(
        '--wait <time>',
        'keep checking this long while writes may be in flight, e.g. 30s',
      ).env('VERIFY_WAIT'),
    )
    .action(async (options) => {
      const { verifyCommand } = await import('./commands/verify.js');
      const report = await verifyCommand(verifySettings(options));
      if (!report.ok) outcome.exitCode = 1;
    });

  const statusCommand = program
    .command('status')
    .description(
      "each stream's checkpoint (position, last event, age), dead letters and table rows, read from the target",
    );
  targetOptions(statusCommand)
    .addOption(switchOption('--json', 'print the report as JSON', 'STATUS_JSON'))
    .action(async (options) => {
      const { status } = await import('./commands/status.js');
      await status(statusSettings(options));
    });

  const deadLetterCommand = program
    .command('dead-letters')
    .description(
      'list the rows the target refused, re-apply them once the cause is fixed, or purge them',
    )
    .argument('<action>', 'list, retry or purge');
  targetOptions(deadLetterCommand)
    .addOption(batchBytesOption())
    .addOption(new Option('--stream-id <id>', 'only this stream').env('STREAM_ID'))
    .addOption(
      new Option('--ns <db.collection>', 'only events of this namespace').env('DEAD_LETTER_NS'),
    )
    .addOption(
      new Option('--id <id>', 'only these dead letters (repeatable)')
        .argParser(collect)
        .env('DEAD_LETTER_IDS'),
    )
    .addOption(
      switchOption('--all', 'purge: every dead letter (otherwise name them)', 'DEAD_LETTER_ALL'),
    )
    .addOption(
      new Option('--limit <n>', 'at most this many (list: 100 by default)').env(
        'DEAD_LETTER_LIMIT',
      ),
    )
    .addOption(switchOption('--json', 'JSON lines', 'DEAD_LETTER_JSON'))
    .action(async (action: string, options) => {
      const { deadLetters } = await import('./commands/dead-letters.js');
      const result = await deadLetters(deadLetterSettings(action, options));
      if ('failed' in result && result.failed.length > 0) outcome.exitCode = 1;
    });

  for (const command of program.commands) {
    command.addOption(
      new Option(
        '--config <file>',
        'JSON file of option values (flags and environment variables win)',
      ).env('RELAY_CONFIG'),
    );
  }
  program.hook('preAction', (_program, command) => applyConfigFile(command));

  return program;
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const outcome: Outcome = { exitCode: 0 };
  const program = buildProgram(outcome);
  program.exitOverride();
  program.configureOutput({ writeErr: (text) => process.stderr.write(text) });
  try {
    await program.parseAsync(argv);
    return outcome.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    const message = redact(errorMessage(error));
    process.stderr.write(`relay: ${message}\n`);
    if (error instanceof ConfigError) return 2;
    if (!(error instanceof RelayError) && process.env.LOG_LEVEL === 'debug') {
      process.stderr.write(`${(error as Error).stack ?? ''}\n`);
    }
    return 1;
  }
}
