CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    request_uuid TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    logged_at REAL NOT NULL
);
