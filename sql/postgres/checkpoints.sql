-- Where each stream resumes (change-stream options as canonical Extended JSON: startAfter a
-- resume token, or startAtOperationTime), and its snapshot progress while the copy runs.
CREATE TABLE IF NOT EXISTS {{schema}}."relay_checkpoints" (
  "stream_id" TEXT PRIMARY KEY,
  "position" TEXT,
  "snapshot" TEXT,
  "event_time" TIMESTAMPTZ,
  "updated_at" TIMESTAMPTZ NOT NULL
);
