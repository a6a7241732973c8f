// Server fail points, as a mongod started with enableTestCommands=1 has them: the state behind
// `configureFailPoint` (src/mongo/util/fail_point.cpp: modes, `count` in the reply) and the
// predicate `failCommand` and `failGetMoreAfterCursorCheckout` share
// (src/mongo/db/commands.cpp CommandHelpers::shouldActivateFailCommandFailPoint).
import type { Document } from 'bson';
import { CommandError } from './errors.js';

export const FAIL_POINT_NAMES = ['failCommand', 'failGetMoreAfterCursorCheckout'] as const;
export type FailPointName = (typeof FAIL_POINT_NAMES)[number];

type Mode =
  | { kind: 'off' }
  | { kind: 'alwaysOn' }
  | { kind: 'times'; remaining: number }
  | { kind: 'skip'; remaining: number }
  | { kind: 'random'; probability: number };

/** What a command is, for deciding whether a fail point applies to it. */
export interface CommandContext {
  /** The command name as the client sent it (`findandmodify`, `isMaster` …). */
  name: string;
  /** `db.coll` the command works on, when it has one. */
  namespace?: string;
  /** The application name the connection's handshake gave (`appName=` in the URL). */
  appName?: string;
}

// Spellings a server accepts for the same command (Command::hasAlias).
const ALIASES: Record<string, string> = {
  findandmodify: 'findAndModify',
  ismaster: 'hello',
  isMaster: 'hello',
  buildinfo: 'buildInfo',
};
const canonical = (name: string) => ALIASES[name] ?? name;

function integer(value: unknown, what: string): number {
  const n = typeof value === 'object' && value !== null ? Number(value.valueOf()) : Number(value);
  if (typeof value === 'boolean' || !Number.isInteger(n)) {
    throw new CommandError(14, `'${what}' must be a number`, 'TypeMismatch');
  }
  return n;
}

function parseMode(mode: unknown): Mode {
  if (mode === undefined) {
    throw new CommandError(20, "When setting a failpoint, you must supply a 'mode'");
  }
  if (typeof mode === 'string') {
    if (mode === 'off') return { kind: 'off' };
    if (mode === 'alwaysOn') return { kind: 'alwaysOn' };
    throw new CommandError(2, `unknown mode: ${mode}`);
  }
  if (typeof mode !== 'object' || mode === null || Array.isArray(mode)) {
    throw new CommandError(14, "'mode' must be a string or JSON object", 'TypeMismatch');
  }
  const m = mode as Document;
  if ('times' in m) {
    const times = integer(m.times, 'times');
    if (times < 0) throw new CommandError(2, "'times' option to 'mode' must be positive");
    return times === 0 ? { kind: 'off' } : { kind: 'times', remaining: times };
  }
  if ('skip' in m) {
    const skip = integer(m.skip, 'skip');
    if (skip < 0) throw new CommandError(2, "'skip' option to 'mode' must be positive");
    return { kind: 'skip', remaining: skip };
  }
  if ('activationProbability' in m) {
    const p = Number(m.activationProbability);
    if (!(p >= 0 && p <= 1)) {
      throw new CommandError(2, `activationProbability must be between 0.0 and 1.0; found ${p}`);
    }
    return { kind: 'random', probability: p };
  }
  throw new CommandError(
    2,
    "'mode' must be one of 'off', 'alwaysOn', '{times:n}', '{skip:n}' or '{activationProbability:p}'",
  );
}

export class FailPoint {
  private mode: Mode = { kind: 'off' };
  private data: Document = {};
  private timesEntered = 0;

  /** Sets the mode and data; returns how often the fail point fired before (the reply's `count`). */
  configure(command: Document): number {
    const mode = parseMode(command.mode);
    const data = command.data ?? {};
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new CommandError(14, "the 'data' option must be a JSON object", 'TypeMismatch');
    }
    this.mode = mode;
    this.data = data as Document;
    return this.timesEntered;
  }

  /**
   * The fail point's data if it fires for this evaluation. As in FailPoint::shouldFail, the mode
   * is consumed only when `applies(data)` holds: `{times}` counts and `{skip}` skips matching
   * evaluations only.
   */
  evaluate(applies: (data: Document) => boolean): Document | null {
    if (this.mode.kind === 'off' || !applies(this.data)) return null;
    const mode = this.mode;
    let fires: boolean;
    switch (mode.kind) {
      case 'alwaysOn':
        fires = true;
        break;
      case 'random':
        fires = Math.random() < mode.probability;
        break;
      case 'times':
        mode.remaining--;
        if (mode.remaining <= 0) this.mode = { kind: 'off' };
        fires = true;
        break;
      case 'skip':
        fires = mode.remaining <= 0 || --mode.remaining < 0;
        break;
    }
    if (!fires) return null;
    this.timesEntered++;
    return this.data;
  }
}

export class FailPoints {
  private readonly points = new Map<FailPointName, FailPoint>(
    FAIL_POINT_NAMES.map((name) => [name, new FailPoint()]),
  );

  /** `configureFailPoint` (admin only): `{count: <times the fail point fired before>}`. */
  configure(command: Document): Document {
    const name = String(command.configureFailPoint);
    const point = this.points.get(name as FailPointName);
    if (!point) throw new CommandError(266, `${name} not found`, 'FailPointSetFailed');
    return { count: point.configure(command), ok: 1 };
  }

  /** Turns every fail point off. */
  clear(): void {
    for (const point of this.points.values()) point.configure({ mode: 'off' });
  }

  /**
   * `failCommand` for this command: its data when it fires. Only a fail point that closes the
   * connection, blocks it or sets an error code fires (evaluateFailCommandFailPoint), and
   * configureFailPoint itself is never failed.
   */
  failCommand(command: CommandContext): Document | null {
    if (command.name === 'configureFailPoint') return null;
    return this.points
      .get('failCommand')!
      .evaluate(
        (data) =>
          appliesTo(data, command, data.failCommands) &&
          (data.closeConnection === true ||
            data.blockConnection === true ||
            data.errorCode !== undefined),
      );
  }

  /** `failGetMoreAfterCursorCheckout`: fires inside a getMore once its cursor is checked out. */
  failGetMoreAfterCursorCheckout(command: CommandContext): Document | null {
    return this.points
      .get('failGetMoreAfterCursorCheckout')!
      .evaluate((data) => appliesTo(data, command, ['getMore']));
  }
}

function appliesTo(data: Document, command: CommandContext, names: unknown): boolean {
  if (typeof data.appName === 'string' && data.appName !== (command.appName ?? '')) return false;
  if (typeof data.namespace === 'string' && data.namespace !== command.namespace) return false;
  if (data.failAllCommands !== undefined) return true;
  if (!Array.isArray(names)) return false;
  const name = canonical(command.name);
  return names.some((n) => typeof n === 'string' && canonical(n) === name);
}
