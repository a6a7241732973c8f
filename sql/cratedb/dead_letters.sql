-- Events whose rows the target rejected, with the error, for inspection and retry. Events can be
-- larger than CrateDB indexes a string (32766 bytes), so they are stored unindexed.
CREATE TABLE IF NOT EXISTS {{schema}}."relay_dead_letters" (
  "id" TEXT PRIMARY KEY,
  "stream_id" TEXT NOT NULL,
  "ns" TEXT NOT NULL,
  "oid" TEXT,
  "operation" TEXT NOT NULL,
  "event" TEXT NOT NULL INDEX OFF STORAGE WITH (columnstore = false),
  "error" TEXT NOT NULL INDEX OFF STORAGE WITH (columnstore = false),
  "created_at" TIMESTAMP WITH TIME ZONE NOT NULL
);
