CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL
);
CREATE TABLE processed_events (
    event_id TEXT PRIMARY KEY
);
