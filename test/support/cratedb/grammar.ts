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
 * The JavaScript build of the grammar runs ANTLR in LL mode: about a second per thousand OR terms
 * or several thousand VALUES rows, and it overflows Node's stack near 6,000 OR terms. Repeated
 * parameter-only parts (`($1, $2), ($3, $4), …` and `"oid" = $1 OR "oid" = $2 …`) parse the
 * same however often they repeat, so the grammar checks the statement with one of each; the
 * harness's own parser still reads the whole statement.
 */
const TUPLE = String.raw`\(\s*\$\d+(?:\s*,\s*\$\d+)*\s*\)`;
const REPEATED_TUPLES = new RegExp(`(${TUPLE})(?:\\s*,\\s*${TUPLE})+`, 'g');
// `\b`: a long word is tried from its start only (no quadratic backtracking).
const TERM = String.raw`(?:"[^"]+"|\b\w+)\s*=\s*\$\d+`;
const REPEATED_TERMS = new RegExp(`(${TERM})(?:\\s+or\\s+${TERM})+`, 'gi');

export function grammarShape(sql: string): string {
  return sql.replace(REPEATED_TUPLES, '$1').replace(REPEATED_TERMS, '$1');
}

/** `syntaxCode`: XX000 up to 6.3, 42601 from 6.4 (`PGError.fromThrowable`). */
export function checkGrammar(sql: string, orTerms: number, syntaxCode: string): void {
  if (orTerms >= PARSER_MAX_OR_TERMS) {
    throw new PgError(
      syntaxCode,
      'line 1:1: statement is too large (stack overflow while parsing)',
    );
  }
  const shape = grammarShape(sql);
  let verdict = verdicts.get(shape);
  if (verdict === undefined) {
    verdict = parseError(shape);
    if (verdicts.size >= MAX_CACHED) verdicts.clear();
    verdicts.set(shape, verdict);
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
