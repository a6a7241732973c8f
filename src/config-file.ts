// `--config relay.json`: option values from a JSON file, below flags and environment variables.
// Keys are the long option names without dashes' prefix ("mongodb-url", "batch-size"); an unknown
// key is an error that lists the valid ones, so a typo never goes unnoticed.
import fs from 'node:fs';
import type { Command, Option } from 'commander';
import { ConfigError, errorMessage } from './errors.js';

function optionValue(option: Option, key: string, value: unknown, file: string): unknown {
  const bad = (expected: string) =>
    new ConfigError(`${file}: "${key}" must be ${expected}, not ${JSON.stringify(value)}`);
  if (option.long === '--collection' || option.long === '--operation' || option.long === '--id') {
    if (typeof value === 'string') return value.split(',').map((v) => v.trim());
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
    throw bad('a string or an array of strings');
  }
  if (option.flags.includes('[yes|no]')) {
    if (typeof value !== 'boolean') throw bad('true or false');
    return value;
  }
  if (typeof value === 'string' || typeof value === 'number') {
    const text = String(value);
    if (option.argChoices && !option.argChoices.includes(text))
      throw bad(`one of ${option.argChoices.join(', ')}`);
    return text;
  }
  throw bad('a string or a number');
}

/** Fills the options that neither a flag nor an environment variable set from `--config`. */
export function applyConfigFile(command: Command): void {
  const file = command.opts().config as string | undefined;
  if (!file) return;
  let values: unknown;
  try {
    values = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError(`--config ${file} cannot be read as JSON: ${errorMessage(error)}`);
  }
  if (!values || typeof values !== 'object' || Array.isArray(values)) {
    throw new ConfigError(`--config ${file} must hold one JSON object of option names and values`);
  }
  const options = new Map(
    command.options
      .filter((o) => o.long && o.long !== '--config')
      .map((o) => [o.long!.slice(2), o]),
  );
  for (const [key, value] of Object.entries(values)) {
    const option = options.get(key);
    if (!option) {
      throw new ConfigError(
        `--config ${file}: unknown key "${key}" for ${command.name()}; valid keys: ${[...options.keys()].join(', ')}`,
      );
    }
    const name = option.attributeName();
    const source = command.getOptionValueSource(name);
    if (source === undefined || source === 'default') {
      command.setOptionValueWithSource(name, optionValue(option, key, value, file), 'config');
    }
  }
}
