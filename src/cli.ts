// Commander wiring only: each command's behaviour lives in src/commands/.
import { Command } from 'commander';

export function buildProgram(): Command {
  return new Command('relay')
    .description('Change-data-capture relay: MongoDB change streams into CrateDB and PostgreSQL tables.')
    .version('0.1.0');
}

export async function main(argv: string[]): Promise<number> {
  await buildProgram().parseAsync(argv);
  return 0;
}
