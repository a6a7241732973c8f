import { sql, type SqlBool } from 'kysely';
import type { Dialect } from '../dialect.js';
import { loadSql, quoteIdent } from '../sql.js';
import { classifyCrateError } from './errors.js';
import { crateTableName } from './names.js';
import { CrateRowTyping } from './typing.js';

// CrateDB rejects these inside object keys (`ColumnIdent.validateObjectKey`): `.` and `[`
// (subscripts), tab, CR and LF. `]` is allowed.
const FORBIDDEN_KEY_CHARS = /[.[\t\r\n]/g;

const crateObjectKey = (key: string) => key.replace(FORBIDDEN_KEY_CHARS, '_');

export const crateDialect: Dialect = {
  name: 'cratedb',
  defaultSchema: 'doc',
  transactional: false,
  objectKey: crateObjectKey,
  // `pk = $1 OR …` is planned as a primary-key lookup only below 9,999 terms
  // (`EqualityExtractor.MAX_ITERATIONS`); longer lists silently become a search that misses
  // unrefreshed rows, and about 12,000 overflow the parser. 1,000 keeps far from both.
  maxKeysPerStatement: 1000,
  // Statement text stays far under `statement_max_length` (262,144 characters on 6.x): a
  // dead-letter row is the widest, 8 parameters, about 60 characters.
  maxRowsPerInsert: 2000,
  ddl(schema, table, objectPolicy) {
    const statements = [
      loadSql('cratedb', 'checkpoints', { schema }),
      loadSql('cratedb', 'dead_letters', { schema }),
    ];
    if (table) {
      statements.push(
        loadSql('cratedb', 'data_table', {
          schema,
          table,
          object_policy: objectPolicy.toUpperCase(),
        }),
      );
    }
    return statements;
  },
  // The documented primary-key lookup form (`pk = a OR pk = b`): it reads rows written since the
  // last refresh, which a DELETE or SELECT of another shape would miss.
  oidIn: (oids) =>
    sql<SqlBool>`(${sql.join(
      oids.map((oid) => sql`"oid" = ${oid}`),
      sql` OR `,
    )})`,
  tableName: crateTableName,
  unwrittenRow:
    'CrateDB did not write this row and reported no error (a one-row INSERT with row count 0). ' +
    'It does this when a value fails inside the shard with a ClassCastException it swallows: ' +
    'usually a value whose type conflicts with its existing sub-column inside an array or a ' +
    'nested object, or an array mixing element types. Compare the document with ' +
    'information_schema.columns of its table; see README, Troubleshooting',
  // CrateDB casts JSON text to the OBJECT column; pg would send a JS array as an array literal.
  dataParameter: (placeholder) => placeholder,
  classifyError: classifyCrateError,
  // OBJECT(IGNORED) stores any value as it is and indexes none: nothing to declare or check.
  rowTyping: (objectPolicy) =>
    objectPolicy === 'ignored'
      ? { prepare: async () => new Map(), forget: () => {} }
      : new CrateRowTyping(crateObjectKey),
  refresh: async (db, schema, table) => {
    await sql.raw(`REFRESH TABLE ${quoteIdent(schema)}.${quoteIdent(table)}`).execute(db);
  },
};
