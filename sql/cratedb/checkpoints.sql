-- Where each stream resumes (change-stream options as canonical Extended JSON: startAfter a
-- resume token, or startAtOperationTime), and its snapshot progress while the copy runs.
CREATE TABLE IF NOT EXISTS {{schema}}."relay_checkpoints" (
  "stream_id" TEXT PRIMARY KEY,
  "position" TEXT INDEX OFF STORAGE WITH (columnstore = false),
  "snapshot" TEXT INDEX OFF STORAGE WITH (columnstore = false),
  "event_time" TIMESTAMP WITH TIME ZONE,
  "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL
);
