-- One row per source document: `oid` is the document's _id as text, `data` the converted document.
-- A primary key makes writes idempotent upserts and lookups by oid real-time.
CREATE TABLE IF NOT EXISTS {{schema}}.{{table}} (
  "oid" TEXT PRIMARY KEY,
  "data" OBJECT({{object_policy}})
);
