"""The run directory: contract columns, atomic Parquet I/O, manifest, sharding and resumable parts."""
