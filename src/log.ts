// Logs on stderr through pino: one JSON object a line (for log collectors), or readable lines
// when stderr is a terminal. A password inside any URL is never printed, in messages or fields.
import { pino, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Replaces the password of every URL in `text` with `***`. */
export function redact(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+):[^@\s]*@/gi, '$1:***@');
}

function redactFields(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!fields) return {};
  return JSON.parse(redact(JSON.stringify(fields))) as Record<string, unknown>;
}

export interface LoggerOptions {
  /** Where lines go (default stderr); readable lines when it is a terminal. */
  destination?: NodeJS.WritableStream & { isTTY?: boolean };
}

export function createLogger(level: Level = 'info', options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stderr;
  const stream: DestinationStream = destination.isTTY
    ? pretty({
        destination,
        colorize: true,
        ignore: 'pid,hostname',
        translateTime: 'SYS:HH:MM:ss.l',
        sync: true,
      })
    : (destination as DestinationStream);
  const logger = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  const emit = (at: Level) => (message: string, fields?: Record<string, unknown>) =>
    logger[at](redactFields(fields), redact(message));
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}
