CREATE TABLE profiles_by_arrival (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL
);
CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    version INTEGER NOT NULL
);
