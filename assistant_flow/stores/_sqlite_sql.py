"""The SQL behind the SQLite stores: two tables, and every statement the stores run.

``assistant_flow_records`` holds each conversation's JSON record with its version and, when a
time to live is set, its expiry. ``assistant_flow_locks`` holds leases: a row naming a
conversation's lock owner (a random token) and when the lease lapses.
"""

from __future__ import annotations

__all__ = [
    "COUNT",
    "DELETE",
    "DELETE_IF_EXPIRED",
    "DROP_LEASE",
    "FOUND_VERSION",
    "INSERT",
    "LOAD",
    "PURGE",
    "RENEW_LEASE",
    "SCHEMA",
    "TAKE_LEASE",
    "TOUCH",
    "UPDATE",
]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS assistant_flow_records ("
    " conversation_id TEXT PRIMARY KEY, version INTEGER NOT NULL, record TEXT NOT NULL,"
    " expires REAL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS assistant_flow_locks ("
    " conversation_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL)"
    " WITHOUT ROWID",
)
# Takes the lease when nobody holds it or the holder's lease has lapsed; changes no row else.
TAKE_LEASE = (
    "INSERT INTO assistant_flow_locks (conversation_id, owner, expires) VALUES (?, ?, ?)"
    " ON CONFLICT (conversation_id) DO UPDATE SET owner = excluded.owner,"
    " expires = excluded.expires WHERE assistant_flow_locks.expires <= ?"
)
DROP_LEASE = "DELETE FROM assistant_flow_locks WHERE conversation_id = ? AND owner = ?"
RENEW_LEASE = "UPDATE assistant_flow_locks SET expires = ? WHERE conversation_id = ? AND owner = ?"
TOUCH = "UPDATE assistant_flow_records SET expires = ? WHERE conversation_id = ? AND expires > ?"
LOAD = "SELECT record, expires FROM assistant_flow_records WHERE conversation_id = ?"
INSERT = (
    "INSERT INTO assistant_flow_records (conversation_id, version, record, expires)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET"
    " version = excluded.version, record = excluded.record, expires = excluded.expires"
    " WHERE assistant_flow_records.expires IS NOT NULL AND assistant_flow_records.expires <= ?"
)
UPDATE = (
    "UPDATE assistant_flow_records SET version = ?, record = ?, expires = ?"
    " WHERE conversation_id = ? AND version = ? AND (expires IS NULL OR expires > ?)"
)
FOUND_VERSION = (
    "SELECT version FROM assistant_flow_records"
    " WHERE conversation_id = ? AND (expires IS NULL OR expires > ?)"
)
DELETE = "DELETE FROM assistant_flow_records WHERE conversation_id = ?"
DELETE_IF_EXPIRED = "DELETE FROM assistant_flow_records WHERE conversation_id = ? AND expires <= ?"
COUNT = "SELECT count(*) FROM assistant_flow_records WHERE expires IS NULL OR expires > ?"
PURGE = (
    "DELETE FROM assistant_flow_records WHERE expires <= ?",
    "DELETE FROM assistant_flow_locks WHERE expires <= ?",
)
