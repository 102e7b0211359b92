"""Dagster resources: the warehouse, the blob store, the Jolpica client and the FastF1 session loader."""
