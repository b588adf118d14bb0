CREATE TABLE memory_balances (account TEXT PRIMARY KEY, amount INTEGER NOT NULL);
CREATE TABLE openfaas_balances (account TEXT PRIMARY KEY, amount INTEGER NOT NULL);
CREATE TABLE table_balances (account TEXT PRIMARY KEY, amount INTEGER NOT NULL);
CREATE TABLE table_payments (id TEXT PRIMARY KEY);
