import { sql } from 'kysely';
import type { Dialect } from '../dialect.js';
import { classifyTargetError } from '../errors.js';
import { loadSql } from '../sql.js';

export const postgresDialect: Dialect = {
  name: 'postgres',
  defaultSchema: 'public',
  transactional: true,
  objectKey: (key) => key,
  ddl(schema, table) {
    const statements = [
      loadSql('postgres', 'schema', { schema }),
      loadSql('postgres', 'checkpoints', { schema }),
      loadSql('postgres', 'dead_letters', { schema }),
    ];
    if (table) statements.push(loadSql('postgres', 'data_table', { schema, table }));
    return statements;
  },
  oidIn: (eb, oids) => eb('oid', 'in', oids),
  dataValue: (json) => sql`${json}::jsonb`,
  classifyError: classifyTargetError,
  refresh: async () => {},
};
