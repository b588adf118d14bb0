CREATE TABLE racy_processed (event_id TEXT PRIMARY KEY);
CREATE TABLE last_processed (event_id TEXT PRIMARY KEY);
CREATE TABLE once_processed (event_id TEXT PRIMARY KEY);
