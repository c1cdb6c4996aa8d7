"""The append-only event log, its projections and master data (SQLite WAL or PostgreSQL)."""
