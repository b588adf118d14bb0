CREATE TABLE welcomed (
    user_id TEXT PRIMARY KEY
);
