-- One row per source document: `oid` is the document's _id as text, `data` the converted document.
CREATE TABLE IF NOT EXISTS {{schema}}.{{table}} (
  "oid" TEXT PRIMARY KEY,
  "data" JSONB NOT NULL
);
