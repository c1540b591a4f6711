"""SQLite options for a database shared by the web process and the worker's threads.

WAL lets readers and one writer work at once, the timeout waits for the lock instead of
failing, and immediate transactions take the write lock up front so two writers never
deadlock on an upgrade ("database is locked").
"""

SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
