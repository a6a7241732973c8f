// A parser for the part of CrateDB's SQL the relay and its tests send, into a small AST that
// engine.ts evaluates. CrateDB's own grammar (grammar.ts) decides first whether a statement
// parses at all; this parser only has to understand what that grammar accepted.
import { PgError } from './wire.js';

export type Expr =
  | { k: 'lit'; v: LiteralValue }
  | { k: 'param'; i: number }
  | { k: 'col'; table: string | null; name: string; path: string[] }
  | { k: 'fn'; name: string; args: Expr[]; star: boolean }
  | { k: 'bin'; op: string; l: Expr; r: Expr }
  | { k: 'not'; e: Expr }
  | { k: 'neg'; e: Expr }
  | { k: 'isnull'; e: Expr; not: boolean }
  | { k: 'in'; e: Expr; list: Expr[]; not: boolean }
  | { k: 'any'; op: string; e: Expr; array: Expr }
  | { k: 'cast'; e: Expr; type: TypeSpec }
  | { k: 'subscript'; e: Expr; key: Expr }
  | { k: 'array'; items: Expr[] };

/** Literal values: integers as bigint (CrateDB types integer literals, JSON or SQL, as such). */
export type LiteralValue = string | number | bigint | boolean | null;

export interface TypeSpec {
  name: string;
  /** For OBJECT: its column policy. */
  policy?: 'dynamic' | 'strict' | 'ignored';
  /** For OBJECT AS (...): the declared sub-columns. */
  children?: ColumnDef[];
  /** For ARRAY(t) / t[]. */
  element?: TypeSpec;
}

export interface ColumnDef {
  name: string;
  /** Sub-column path below `name` (`data['a']['b']` in ALTER TABLE ADD COLUMN). */
  path: string[];
  type: TypeSpec;
  primaryKey: boolean;
  notNull: boolean;
  indexOff: boolean;
  columnstore: boolean;
  checks: CheckDef[];
}

/** `CONSTRAINT name CHECK (expr)`; `text` is the expression as written. */
export interface CheckDef {
  name: string | null;
  expr: Expr;
  text: string;
}

export interface TableRef {
  schema: string | null;
  name: string;
  alias: string | null;
}

export interface SelectItem {
  expr: Expr | null; // null: `*`
  alias: string | null;
  text: string;
}

export interface OrderItem {
  expr: Expr;
  desc: boolean;
  nullsFirst: boolean | null;
}

export type Statement =
  | {
      kind: 'select';
      items: SelectItem[];
      from: TableRef | null;
      where: Expr | null;
      groupBy: Expr[];
      having: Expr | null;
      orderBy: OrderItem[];
      limit: Expr | null;
      offset: Expr | null;
    }
  | {
      kind: 'insert';
      table: TableRef;
      columns: string[] | null;
      rows: Expr[][];
      onConflict: { target: string[]; update: { column: Expr; value: Expr }[] | null } | null;
      returning: SelectItem[] | null;
    }
  | {
      kind: 'update';
      table: TableRef;
      sets: { column: Expr; value: Expr }[];
      where: Expr | null;
      returning: SelectItem[] | null;
    }
  | { kind: 'delete'; table: TableRef; where: Expr | null }
  | {
      kind: 'create';
      table: TableRef;
      ifNotExists: boolean;
      columns: ColumnDef[];
      primaryKey: string[];
      checks: CheckDef[];
      /** `WITH (…)` table parameters, values as literal text. */
      properties: Record<string, string>;
    }
  | { kind: 'drop'; table: TableRef; ifExists: boolean }
  | { kind: 'alter-add'; table: TableRef; columns: ColumnDef[] }
  | { kind: 'drop-check'; table: TableRef; name: string }
  | { kind: 'refresh'; tables: TableRef[] }
  | { kind: 'begin' }
  | { kind: 'commit' };

type Token =
  | { t: 'id'; v: string; quoted: boolean; pos: number }
  | { t: 'str'; v: string; pos: number }
  | { t: 'num'; v: string; pos: number }
  | { t: 'param'; v: number; pos: number }
  | { t: 'op'; v: string; pos: number }
  | { t: 'eof'; v: ''; pos: number };

const OPS = [
  '::',
  '<>',
  '!=',
  '<=',
  '>=',
  '||',
  '=',
  '<',
  '>',
  '(',
  ')',
  ',',
  '.',
  '[',
  ']',
  '*',
  '+',
  '-',
  '/',
  '%',
  ';',
];

function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let positional = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      while (i < sql.length && sql[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
      continue;
    }
    const pos = i;
    if (c === "'") {
      let v = '';
      i++;
      for (;;) {
        if (i >= sql.length) throw syntax('unterminated string');
        if (sql[i] === "'") {
          if (sql[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += sql[i++];
      }
      tokens.push({ t: 'str', v, pos });
      continue;
    }
    if (c === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= sql.length) throw syntax('unterminated identifier');
        if (sql[i] === '"') {
          if (sql[i + 1] === '"') {
            v += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        v += sql[i++];
      }
      tokens.push({ t: 'id', v, quoted: true, pos });
      continue;
    }
    if (c === '$' && /\d/.test(sql[i + 1] ?? '')) {
      let j = i + 1;
      while (/\d/.test(sql[j] ?? '')) j++;
      tokens.push({ t: 'param', v: Number(sql.slice(i + 1, j)), pos });
      i = j;
      continue;
    }
    if (c === '?') {
      tokens.push({ t: 'param', v: ++positional, pos });
      i++;
      continue;
    }
    if (/\d/.test(c) || (c === '.' && /\d/.test(sql[i + 1] ?? ''))) {
      const m = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(sql.slice(i, i + 400))!;
      tokens.push({ t: 'num', v: m[0], pos });
      i += m[0].length;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (/[A-Za-z0-9_$]/.test(sql[j] ?? '')) j++;
      tokens.push({ t: 'id', v: sql.slice(i, j).toLowerCase(), quoted: false, pos });
      i = j;
      continue;
    }
    const op = OPS.find((o) => sql.startsWith(o, i));
    if (!op) throw syntax(`unexpected character '${c}'`);
    tokens.push({ t: 'op', v: op, pos });
    i += op.length;
  }
  tokens.push({ t: 'eof', v: '', pos: sql.length });
  return tokens;
}

function syntax(message: string): PgError {
  return new PgError('XX000', `harness cannot interpret this statement: ${message}`);
}

/**
 * The statements of a simple query, split at top-level semicolons (CrateDB runs each in turn,
 * `SqlParser.createStatementsForSimpleQuery`). Text that does not tokenize stays whole, for the
 * grammar to refuse.
 */
export function splitStatements(sql: string): string[] {
  let tokens: Token[];
  try {
    tokens = tokenize(sql);
  } catch {
    return [sql];
  }
  const out: string[] = [];
  let start = 0;
  for (const t of tokens) {
    if (t.t === 'op' && t.v === ';') {
      out.push(sql.slice(start, t.pos));
      start = t.pos + 1;
    }
  }
  out.push(sql.slice(start));
  const statements = out.filter((part) => tokenize(part).length > 1);
  return statements.length ? statements : [sql];
}

/** Parses one statement (CrateDB's grammar has already accepted it). */
export function parseStatement(sql: string): Statement {
  return new Parser(sql, tokenize(sql)).statement();
}

class Parser {
  private i = 0;
  constructor(
    private readonly sql: string,
    private readonly tokens: Token[],
  ) {}

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)]!;
  }
  private next(): Token {
    return this.tokens[this.i++]!;
  }
  /** An unquoted keyword. */
  private isKw(word: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.t === 'id' && !t.quoted && t.v === word;
  }
  private acceptKw(...words: string[]): boolean {
    for (let n = 0; n < words.length; n++) if (!this.isKw(words[n]!, n)) return false;
    this.i += words.length;
    return true;
  }
  private expectKw(...words: string[]): void {
    if (!this.acceptKw(...words)) this.fail(`expected ${words.join(' ').toUpperCase()}`);
  }
  private isOp(op: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === op;
  }
  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.i++;
    return true;
  }
  private expectOp(op: string): void {
    if (!this.acceptOp(op)) this.fail(`expected '${op}'`);
  }
  private fail(message: string): never {
    const t = this.peek();
    throw syntax(`${message} at '${this.sql.slice(t.pos, t.pos + 30)}'`);
  }
  private ident(): string {
    const t = this.next();
    if (t.t !== 'id') {
      this.i--;
      this.fail('expected an identifier');
    }
    return t.v;
  }

  statement(): Statement {
    const s = this.statementBody();
    this.acceptOp(';');
    if (this.peek().t !== 'eof') this.fail('expected the end of the statement');
    return s;
  }

  private statementBody(): Statement {
    if (this.acceptKw('select')) return this.select();
    if (this.acceptKw('insert', 'into')) return this.insert();
    if (this.acceptKw('update')) return this.update();
    if (this.acceptKw('delete', 'from')) {
      const table = this.tableRef();
      return { kind: 'delete', table, where: this.acceptKw('where') ? this.expr() : null };
    }
    if (this.acceptKw('create', 'table')) return this.createTable();
    if (this.acceptKw('drop', 'table')) {
      const ifExists = this.acceptKw('if', 'exists');
      return { kind: 'drop', table: this.tableRef(), ifExists };
    }
    if (this.acceptKw('alter', 'table')) return this.alterTable();
    if (this.acceptKw('refresh', 'table')) {
      const tables = [this.tableRef()];
      while (this.acceptOp(',')) tables.push(this.tableRef());
      return { kind: 'refresh', tables };
    }
    if (this.acceptKw('begin') || this.acceptKw('start', 'transaction')) {
      while (this.peek().t !== 'eof' && !this.isOp(';')) this.next();
      return { kind: 'begin' };
    }
    if (this.acceptKw('commit') || this.acceptKw('end')) {
      if (!this.acceptKw('work')) this.acceptKw('transaction');
      return { kind: 'commit' };
    }
    this.fail('unsupported statement');
  }

  private tableRef(): TableRef {
    let name = this.ident();
    let schema: string | null = null;
    if (this.acceptOp('.')) {
      schema = name;
      name = this.ident();
    }
    let alias: string | null = null;
    if (this.acceptKw('as')) alias = this.ident();
    else if (this.peek().t === 'id' && !KEYWORDS.has(String(this.peek().v))) alias = this.ident();
    return { schema, name, alias };
  }

  private select(): Statement {
    const items = this.selectList();
    let from: TableRef | null = null;
    if (this.acceptKw('from')) from = this.tableRef();
    const where = this.acceptKw('where') ? this.expr() : null;
    const groupBy: Expr[] = [];
    if (this.acceptKw('group', 'by')) {
      do groupBy.push(this.expr());
      while (this.acceptOp(','));
    }
    const having = this.acceptKw('having') ? this.expr() : null;
    const orderBy: OrderItem[] = [];
    if (this.acceptKw('order', 'by')) {
      do {
        const expr = this.expr();
        const desc = this.acceptKw('desc') ? true : (this.acceptKw('asc'), false);
        let nullsFirst: boolean | null = null;
        if (this.acceptKw('nulls', 'first')) nullsFirst = true;
        else if (this.acceptKw('nulls', 'last')) nullsFirst = false;
        orderBy.push({ expr, desc, nullsFirst });
      } while (this.acceptOp(','));
    }
    let limit: Expr | null = null;
    let offset: Expr | null = null;
    for (;;) {
      if (this.acceptKw('limit')) limit = this.expr();
      else if (this.acceptKw('offset')) offset = this.expr();
      else break;
    }
    return { kind: 'select', items, from, where, groupBy, having, orderBy, limit, offset };
  }

  private selectList(): SelectItem[] {
    const items: SelectItem[] = [];
    do {
      const start = this.peek().pos;
      if (this.acceptOp('*')) {
        items.push({ expr: null, alias: null, text: '*' });
        continue;
      }
      const expr = this.expr();
      const text = this.sql.slice(start, this.peek().pos).trim();
      let alias: string | null = null;
      if (this.acceptKw('as')) alias = this.ident();
      else if (this.peek().t === 'id' && !KEYWORDS.has(String(this.peek().v))) alias = this.ident();
      items.push({ expr, alias, text });
    } while (this.acceptOp(','));
    return items;
  }

  private insert(): Statement {
    const table = this.tableRef();
    let columns: string[] | null = null;
    if (this.acceptOp('(')) {
      columns = [];
      do columns.push(this.ident());
      while (this.acceptOp(','));
      this.expectOp(')');
    }
    this.expectKw('values');
    const rows: Expr[][] = [];
    do {
      this.expectOp('(');
      const row: Expr[] = [];
      do row.push(this.expr());
      while (this.acceptOp(','));
      this.expectOp(')');
      rows.push(row);
    } while (this.acceptOp(','));
    let onConflict: Extract<Statement, { kind: 'insert' }>['onConflict'] = null;
    if (this.acceptKw('on', 'conflict')) {
      const target: string[] = [];
      if (this.acceptOp('(')) {
        do target.push(this.ident());
        while (this.acceptOp(','));
        this.expectOp(')');
      }
      this.expectKw('do');
      if (this.acceptKw('nothing')) onConflict = { target, update: null };
      else {
        this.expectKw('update', 'set');
        onConflict = { target, update: this.assignments() };
      }
    }
    const returning = this.acceptKw('returning') ? this.selectList() : null;
    return { kind: 'insert', table, columns, rows, onConflict, returning };
  }

  private assignments(): { column: Expr; value: Expr }[] {
    const sets: { column: Expr; value: Expr }[] = [];
    do {
      const column = this.postfix();
      this.expectOp('=');
      sets.push({ column, value: this.expr() });
    } while (this.acceptOp(','));
    return sets;
  }

  private update(): Statement {
    const table = this.tableRef();
    this.expectKw('set');
    const sets = this.assignments();
    const where = this.acceptKw('where') ? this.expr() : null;
    const returning = this.acceptKw('returning') ? this.selectList() : null;
    return { kind: 'update', table, sets, where, returning };
  }

  private createTable(): Statement {
    const ifNotExists = this.acceptKw('if', 'not', 'exists');
    const table = this.tableRef();
    this.expectOp('(');
    const columns: ColumnDef[] = [];
    const checks: CheckDef[] = [];
    let primaryKey: string[] = [];
    do {
      if (this.isKw('constraint') || this.isKw('check')) {
        checks.push(this.check());
        continue;
      }
      if (this.acceptKw('primary', 'key')) {
        this.expectOp('(');
        do primaryKey.push(this.ident());
        while (this.acceptOp(','));
        this.expectOp(')');
        continue;
      }
      columns.push(this.columnDef(false));
    } while (this.acceptOp(','));
    this.expectOp(')');
    const properties: Record<string, string> = {};
    if (this.acceptKw('with')) {
      this.expectOp('(');
      do {
        let key = this.ident();
        while (this.acceptOp('.')) key += `.${this.ident()}`;
        this.expectOp('=');
        const negative = this.acceptOp('-');
        const t = this.next();
        properties[key] = `${negative ? '-' : ''}${String(t.v)}`;
      } while (this.acceptOp(','));
      this.expectOp(')');
    }
    const inline = columns.filter((c) => c.primaryKey).map((c) => c.name);
    if (inline.length) primaryKey = [...inline, ...primaryKey];
    for (const c of columns) checks.push(...c.checks);
    return { kind: 'create', table, ifNotExists, columns, primaryKey, checks, properties };
  }

  /** `[CONSTRAINT name] CHECK (expr)`. */
  private check(): CheckDef {
    const name = this.acceptKw('constraint') ? this.ident() : null;
    this.expectKw('check');
    this.expectOp('(');
    const start = this.peek().pos;
    const expr = this.expr();
    const text = this.sql.slice(start, this.peek().pos).trim();
    this.expectOp(')');
    return { name, expr, text };
  }

  private alterTable(): Statement {
    const table = this.tableRef();
    if (this.acceptKw('drop', 'constraint')) {
      return { kind: 'drop-check', table, name: this.ident() };
    }
    const columns: ColumnDef[] = [];
    do {
      this.expectKw('add');
      this.acceptKw('column');
      columns.push(this.columnDef(true));
    } while (this.acceptOp(','));
    return { kind: 'alter-add', table, columns };
  }

  private skipParenthesised(): void {
    this.expectOp('(');
    let depth = 1;
    while (depth > 0) {
      const t = this.next();
      if (t.t === 'eof') this.fail("expected ')'");
      if (t.t === 'op' && t.v === '(') depth++;
      if (t.t === 'op' && t.v === ')') depth--;
    }
  }

  private columnDef(subscripts: boolean): ColumnDef {
    const name = this.ident();
    const path: string[] = [];
    while (subscripts && this.acceptOp('[')) {
      const t = this.next();
      if (t.t !== 'str') this.fail('expected a subscript string');
      path.push(t.v);
      this.expectOp(']');
    }
    const type = this.typeSpec();
    const def: ColumnDef = {
      name,
      path,
      type,
      primaryKey: false,
      notNull: false,
      indexOff: false,
      columnstore: true,
      checks: [],
    };
    for (;;) {
      if (this.acceptKw('primary', 'key')) def.primaryKey = true;
      else if (this.acceptKw('not', 'null')) def.notNull = true;
      else if (this.acceptKw('null')) continue;
      else if (this.acceptKw('index', 'off')) def.indexOff = true;
      else if (this.acceptKw('index', 'using')) this.ident();
      else if (this.isKw('constraint') || this.isKw('check')) def.checks.push(this.check());
      else if (this.acceptKw('storage', 'with')) {
        const start = this.i;
        this.skipParenthesised();
        const text = this.tokens
          .slice(start, this.i)
          .map((t) => String(t.v).toLowerCase())
          .join(' ');
        if (/columnstore = false/.test(text)) def.columnstore = false;
      } else break;
    }
    return def;
  }

  private typeSpec(): TypeSpec {
    let spec = this.baseType();
    while (this.isOp('[') && this.peek(1).t === 'op' && this.peek(1).v === ']') {
      this.i += 2;
      spec = { name: 'array', element: spec };
    }
    return spec;
  }

  private baseType(): TypeSpec {
    const word = this.ident();
    switch (word) {
      case 'text':
      case 'string':
        return { name: 'text' };
      case 'varchar':
      case 'character':
        this.acceptKw('varying');
        if (this.acceptOp('(')) {
          this.next();
          this.expectOp(')');
        }
        return { name: 'text' };
      case 'bigint':
      case 'long':
      case 'int8':
        return { name: 'bigint' };
      case 'integer':
      case 'int':
      case 'int4':
        return { name: 'integer' };
      case 'smallint':
      case 'short':
      case 'int2':
        return { name: 'smallint' };
      case 'double':
        this.acceptKw('precision');
        return { name: 'double precision' };
      case 'float8':
        return { name: 'double precision' };
      case 'real':
      case 'float':
      case 'float4':
        return { name: 'real' };
      case 'boolean':
      case 'bool':
        return { name: 'boolean' };
      case 'timestamp': {
        if (this.acceptKw('with', 'time', 'zone')) return { name: 'timestamp with time zone' };
        if (this.acceptKw('without', 'time', 'zone'))
          return { name: 'timestamp without time zone' };
        return { name: 'timestamp with time zone' };
      }
      case 'timestamptz':
        return { name: 'timestamp with time zone' };
      case 'object': {
        let policy: TypeSpec['policy'] = 'dynamic';
        if (this.acceptOp('(')) {
          const p = this.ident();
          if (p !== 'dynamic' && p !== 'strict' && p !== 'ignored')
            this.fail('unknown column policy');
          policy = p;
          this.expectOp(')');
        }
        let children: ColumnDef[] | undefined;
        if (this.acceptKw('as')) {
          this.expectOp('(');
          children = [];
          do children.push(this.columnDef(false));
          while (this.acceptOp(','));
          this.expectOp(')');
        }
        return { name: 'object', policy, children };
      }
      case 'array': {
        this.expectOp('(');
        const element = this.typeSpec();
        this.expectOp(')');
        return { name: 'array', element };
      }
      default:
        this.i--;
        this.fail(`unsupported type ${word}`);
    }
  }

  // Expressions, loosest binding first.
  expr(): Expr {
    return this.or();
  }
  private or(): Expr {
    // OR chains of tens of thousands of terms are built iteratively (no recursion per term).
    let l = this.and();
    while (this.acceptKw('or')) l = { k: 'bin', op: 'or', l, r: this.and() };
    return l;
  }
  private and(): Expr {
    let l = this.not();
    while (this.acceptKw('and')) l = { k: 'bin', op: 'and', l, r: this.not() };
    return l;
  }
  private not(): Expr {
    if (this.acceptKw('not')) return { k: 'not', e: this.not() };
    return this.comparison();
  }
  private comparison(): Expr {
    const l = this.additive();
    for (;;) {
      if (this.acceptKw('is')) {
        const not = this.acceptKw('not');
        this.expectKw('null');
        return { k: 'isnull', e: l, not };
      }
      const not =
        this.isKw('not') && (this.isKw('in', 1) || this.isKw('like', 1) || this.isKw('ilike', 1));
      if (not) this.i++;
      if (this.acceptKw('in')) {
        this.expectOp('(');
        const list: Expr[] = [];
        do list.push(this.expr());
        while (this.acceptOp(','));
        this.expectOp(')');
        return { k: 'in', e: l, list, not };
      }
      if (this.acceptKw('like') || this.acceptKw('ilike')) {
        const e: Expr = { k: 'bin', op: 'like', l, r: this.additive() };
        return not ? { k: 'not', e } : e;
      }
      const t = this.peek();
      if (t.t === 'op' && ['=', '<>', '!=', '<', '>', '<=', '>='].includes(t.v)) {
        this.i++;
        const op = t.v === '!=' ? '<>' : t.v;
        if (this.isKw('any') && this.peek(1).t === 'op' && this.peek(1).v === '(') {
          this.i += 2;
          const array = this.expr();
          this.expectOp(')');
          return { k: 'any', op, e: l, array };
        }
        return { k: 'bin', op, l, r: this.additive() };
      }
      return l;
    }
  }
  private additive(): Expr {
    let l = this.multiplicative();
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && (t.v === '+' || t.v === '-' || t.v === '||')) {
        this.i++;
        l = { k: 'bin', op: t.v, l, r: this.multiplicative() };
      } else return l;
    }
  }
  private multiplicative(): Expr {
    let l = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.t === 'op' && (t.v === '*' || t.v === '/' || t.v === '%')) {
        this.i++;
        l = { k: 'bin', op: t.v, l, r: this.unary() };
      } else return l;
    }
  }
  private unary(): Expr {
    if (this.acceptOp('-')) {
      const e = this.unary();
      if (e.k === 'lit' && (typeof e.v === 'number' || typeof e.v === 'bigint'))
        return { k: 'lit', v: -e.v };
      return { k: 'neg', e };
    }
    if (this.acceptOp('+')) return this.unary();
    return this.postfix();
  }
  postfix(): Expr {
    let e = this.primary();
    for (;;) {
      if (this.acceptOp('[')) {
        const key = this.expr();
        this.expectOp(']');
        if (e.k === 'col' && key.k === 'lit' && typeof key.v === 'string') {
          e = { ...e, path: [...e.path, key.v] };
        } else e = { k: 'subscript', e, key };
      } else if (this.acceptOp('::')) {
        e = { k: 'cast', e, type: this.typeSpec() };
      } else return e;
    }
  }
  private primary(): Expr {
    const t = this.next();
    switch (t.t) {
      case 'str':
        return { k: 'lit', v: t.v };
      case 'num':
        return { k: 'lit', v: /[.eE]/.test(t.v) ? Number(t.v) : BigInt(t.v) };
      case 'param':
        return { k: 'param', i: t.v };
      case 'op':
        if (t.v === '(') {
          const e = this.expr();
          this.expectOp(')');
          return e;
        }
        break;
      case 'id': {
        if (!t.quoted) {
          if (t.v === 'null') return { k: 'lit', v: null };
          if (t.v === 'true') return { k: 'lit', v: true };
          if (t.v === 'false') return { k: 'lit', v: false };
          if (t.v === 'cast' && this.acceptOp('(')) {
            const e = this.expr();
            this.expectKw('as');
            const type = this.typeSpec();
            this.expectOp(')');
            return { k: 'cast', e, type };
          }
          if (t.v === 'array' && this.acceptOp('[')) {
            const items: Expr[] = [];
            if (!this.isOp(']')) {
              do items.push(this.expr());
              while (this.acceptOp(','));
            }
            this.expectOp(']');
            return { k: 'array', items };
          }
          if ((t.v === 'current_timestamp' || t.v === 'current_date') && !this.isOp('(')) {
            return { k: 'fn', name: t.v, args: [], star: false };
          }
        }
        if (this.acceptOp('(')) {
          const args: Expr[] = [];
          let star = false;
          if (this.acceptOp('*')) star = true;
          else if (!this.isOp(')')) {
            do args.push(this.expr());
            while (this.acceptOp(','));
          }
          this.expectOp(')');
          return { k: 'fn', name: t.v.toLowerCase(), args, star };
        }
        if (this.acceptOp('.')) {
          const name = this.ident();
          return { k: 'col', table: t.v, name, path: [] };
        }
        return { k: 'col', table: null, name: t.v, path: [] };
      }
      default:
        break;
    }
    this.i--;
    this.fail('expected an expression');
  }
}

/** Words that end a select item or a table reference rather than name an alias. */
const KEYWORDS = new Set([
  'add',
  'drop',
  'from',
  'where',
  'group',
  'having',
  'order',
  'limit',
  'offset',
  'on',
  'returning',
  'set',
  'values',
  'union',
  'join',
  'inner',
  'left',
  'right',
  'cross',
]);
