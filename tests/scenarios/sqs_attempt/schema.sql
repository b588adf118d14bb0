CREATE TABLE sold (
    counter TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (counter, sku)
);
CREATE TABLE seen (
    counter TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    PRIMARY KEY (counter, dedup_key)
);
