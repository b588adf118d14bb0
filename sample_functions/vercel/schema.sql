CREATE TABLE payments (
    order_id TEXT PRIMARY KEY,
    paid INTEGER NOT NULL
);
CREATE TABLE seen_messages (
    id TEXT PRIMARY KEY
);
