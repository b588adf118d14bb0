-- The 3factor sample's tables: the same SQL runs on SQLite (faasemu.yaml) and PostgreSQL (faasemu.postgres.yaml).
CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL, total integer NOT NULL);
CREATE TABLE payments (order_id text PRIMARY KEY, amount integer NOT NULL);
CREATE TABLE shipments (order_id text NOT NULL, address text NOT NULL);
