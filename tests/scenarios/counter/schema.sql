CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    balance INTEGER NOT NULL
);
