// Capped exponential backoff for transient faults, logged once per outage rather than per try.
import { errorMessage } from './errors.js';
import type { Logger } from './log.js';

export interface RetryOptions {
  /** What is being retried, for the log ("target", "MongoDB"). */
  what: string;
  isTransient(error: unknown): boolean;
  log: Logger;
  signal?: AbortSignal;
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Called once when an outage starts and once when it ends. */
  onOutage?(state: 'start' | 'end', seconds: number): void;
  /** Called before each retry. */
  onRetry?(): void;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Runs `fn` until it succeeds or fails with a non-transient error (which is thrown). */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions): Promise<T> {
  const initial = options.initialDelayMs ?? 200;
  const max = options.maxDelayMs ?? 10_000;
  let delay = initial;
  let outageStart: number | null = null;
  while (true) {
    try {
      const result = await fn();
      if (outageStart !== null) {
        const seconds = (Date.now() - outageStart) / 1000;
        options.log.info(`${options.what} is back after ${seconds.toFixed(1)}s`);
        options.onOutage?.('end', seconds);
      }
      return result;
    } catch (error) {
      if (!options.isTransient(error) || options.signal?.aborted) throw error;
      if (outageStart === null) {
        outageStart = Date.now();
        options.log.warn(
          `${options.what} unavailable (${errorMessage(error)}); retrying with backoff`,
        );
        options.onOutage?.('start', 0);
      } else {
        options.log.debug(`${options.what} still unavailable (${errorMessage(error)})`);
      }
      await sleep(delay, options.signal);
      options.onRetry?.();
      delay = Math.min(max, delay * 2);
    }
  }
}
