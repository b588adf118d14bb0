CREATE TABLE batch_processed (message_id TEXT PRIMARY KEY);
CREATE TABLE partial_processed (message_id TEXT PRIMARY KEY);
