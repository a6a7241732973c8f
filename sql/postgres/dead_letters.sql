-- Events whose rows the target rejected, with the error, for inspection and retry.
CREATE TABLE IF NOT EXISTS {{schema}}."relay_dead_letters" (
  "id" TEXT PRIMARY KEY,
  "stream_id" TEXT NOT NULL,
  "ns" TEXT NOT NULL,
  "oid" TEXT,
  "operation" TEXT NOT NULL,
  "event" TEXT NOT NULL,
  "error" TEXT NOT NULL,
  "created_at" TIMESTAMPTZ NOT NULL
);
