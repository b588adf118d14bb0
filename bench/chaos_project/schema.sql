-- State of the chaos benchmark's app (bench/chaos_project): applied to every run's fresh database.
CREATE TABLE orders (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE processed (
    event_id TEXT PRIMARY KEY
);
CREATE TABLE sku_events (
    sku TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
