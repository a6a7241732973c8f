// CrateDB's own grammar (`@cratedb/cratedb-sqlparse`, generated from CrateDB's SqlBaseParser.g4)
// decides whether a statement parses; its errors are CrateDB's ParsingException texts.
import { sqlparse } from '@cratedb/cratedb-sqlparse';
import { PgError } from './wire.js';

/** Statements are parameterised, so the relay sends few distinct texts: remember verdicts. */
const verdicts = new Map<string, string | null>();
const MAX_CACHED = 2000;

/**
 * CrateDB's parser recurses once per OR term: about 12,000 terms overflow its stack
 * (`SqlParser.invokeParser`, test `testStackOverflowStatement` uses 12,000).
 */
export const PARSER_MAX_OR_TERMS = 12_000;

/**
 * The JavaScript build of the grammar runs ANTLR in LL mode and recurses deeper per term than the
 * JVM allows for: it takes about a second per thousand OR terms and overflows Node's stack near
 * 6,000. Statements with longer OR chains (primary-key lists) are checked only by the harness's
 * own parser, which accepts exactly the `pk = $n OR …` shape.
 */
const GRAMMAR_MAX_OR_TERMS = 1_000;

/** `syntaxCode`: XX000 up to 6.3, 42601 from 6.4 (`PGError.fromThrowable`). */
export function checkGrammar(sql: string, orTerms: number, syntaxCode: string): void {
  if (orTerms >= PARSER_MAX_OR_TERMS) {
    throw new PgError(
      syntaxCode,
      'line 1:1: statement is too large (stack overflow while parsing)',
    );
  }
  if (orTerms > GRAMMAR_MAX_OR_TERMS) return;
  let verdict = verdicts.get(sql);
  if (verdict === undefined) {
    verdict = parseError(sql);
    if (verdicts.size >= MAX_CACHED) verdicts.clear();
    verdicts.set(sql, verdict);
  }
  if (verdict !== null) throw new PgError(syntaxCode, verdict);
}

function parseError(sql: string): string | null {
  const statements = sqlparse(sql);
  for (const statement of statements) {
    const e = statement.exception;
    if (e) {
      // CrateDB's ParsingException: "line L:C: msg", C counted from 1.
      return `line ${e.line}:${e.column + 1}: ${e.msg}`;
    }
  }
  if (statements.length === 0) return "line 1:1: mismatched input '<EOF>'";
  return null;
}
