import { sql, type SqlBool } from 'kysely';
import { keepKeys } from '../../convert/value.js';
import type { Dialect } from '../dialect.js';
import { classifyTargetError } from '../errors.js';
import { MAX_PARAMETERS, loadSql } from '../sql.js';

export const postgresDialect: Dialect = {
  name: 'postgres',
  defaultSchema: 'public',
  transactional: true,
  objectKey: keepKeys,
  // PostgreSQL's only limit is the wire protocol's 32,767 parameters (two per upserted row).
  maxKeysPerStatement: MAX_PARAMETERS,
  maxRowsPerInsert: Math.floor(MAX_PARAMETERS / 2),
  ddl(schema, table) {
    const statements = [
      loadSql('postgres', 'schema', { schema }),
      loadSql('postgres', 'checkpoints', { schema }),
      loadSql('postgres', 'dead_letters', { schema }),
    ];
    if (table) statements.push(loadSql('postgres', 'data_table', { schema, table }));
    return statements;
  },
  // Any collection name is a table name, quoted.
  tableName: (collection) => collection,
  oidIn: (oids) => sql<SqlBool>`"oid" IN (${sql.join(oids)})`,
  unwrittenRow: 'PostgreSQL reported this row as not written, without an error; it was not stored',
  dataParameter: (placeholder) => `${placeholder}::jsonb`,
  classifyError: classifyTargetError,
  // JSONB keeps every JSON value as it is: nothing to declare or check.
  rowTyping: () => ({ prepare: async () => new Map(), forget: () => {} }),
  refresh: async () => {},
};
