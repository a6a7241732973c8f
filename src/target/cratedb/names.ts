// Table names CrateDB accepts. `RelationName` refuses `.`; `IndexName.validate` refuses
// `\ / * ? " < > |`, space, `,`, `#` and a leading `-` or `+` (table names are index names).
// MongoDB allows all of these in collection names (`fs.files` of GridFS): each becomes `_`.

const REFUSED = /[.\\/*?"<>| ,#]/g;

/** The CrateDB table for a collection: each character CrateDB refuses becomes `_`. */
export function crateTableName(collection: string): string {
  return collection.replace(REFUSED, '_').replace(/^[-+]/, '_');
}
