"""Storage backends: the warehouse (DuckDB or PostgreSQL) and the blob store (local or GCS)."""
