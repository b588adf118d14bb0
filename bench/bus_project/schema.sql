-- The handler's table: one row per delivery it saw (duplicates would add rows).
CREATE TABLE seen (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    function TEXT NOT NULL
);
