CREATE TABLE invoices_dedup (
    source TEXT NOT NULL,
    event_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE TABLE invoices_naive (
    source TEXT NOT NULL,
    order_id TEXT NOT NULL,
    amount INTEGER NOT NULL
);
