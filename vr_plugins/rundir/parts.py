"""Resumable, shardable step outputs.

A step writes its rows in small Parquet *parts* (each part atomic) under a hidden folder; on restart it
reads the keys already present in the parts and skips them, so a SIGKILL loses at most the part in
flight and never duplicates rows. When a shard finishes, its parts are concatenated into the shard
file; when all N shard files of an output exist, whichever shard finishes last merges them into the
final file (sorted by the key columns) under a lock: no coordinator is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vr_plugins.rundir.io import RunDirError, check_unique, file_lock, read_table, write_table_atomic
from vr_plugins.rundir.shards import Shard


class PartWriter:
    """Collects rows of one output file for one shard, in resumable parts."""

    def __init__(self, final_path: str | Path, schema: pa.Schema, keys: list[str], shard: Shard = Shard()):
        self.final_path = Path(final_path)
        self.schema = schema
        self.keys = list(keys)
        self.shard = shard
        self.shard_path = self.final_path.with_name(self.final_path.stem + shard.suffix + ".parquet")
        self.parts_dir = self.final_path.parent / f".parts-{self.final_path.stem}{shard.suffix}"
        self._next_part = 0

    # --- state ------------------------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self.final_path.exists() or self.shard_path.exists()

    def _part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.exists() else []

    def done_keys(self) -> set[tuple]:
        """Keys already written (by parts of an interrupted run, or by the finished file)."""
        files = [self.final_path] if self.final_path.exists() else (
            [self.shard_path] if self.shard_path.exists() else self._part_files()
        )
        done: set[tuple] = set()
        for f in files:
            table = pq.read_table(f, columns=self.keys)
            done.update(zip(*(table[k].to_pylist() for k in self.keys)))
        return done

    # --- writing ----------------------------------------------------------------------------------
    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=self._row_schema(rows[0])))

    def _row_schema(self, row: dict) -> pa.Schema:
        extra = [name for name in row if name not in self.schema.names]
        if not extra:
            return self.schema
        sample = pa.Table.from_pylist([row])
        return pa.schema(list(self.schema) + [sample.schema.field(name) for name in extra])

    def write_table(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        existing = self._part_files()
        if existing and self._next_part == 0:
            self._next_part = int(existing[-1].stem.split("-")[1]) + 1
        write_table_atomic(table, self.parts_dir / f"part-{self._next_part:06d}.parquet")
        self._next_part += 1

    def finish(self, sort: bool = True) -> Path:
        """Concatenate parts into the shard file, then try to merge all shards. Returns the path written."""
        if not self.shard_path.exists() and not self.final_path.exists():
            files = self._part_files()
            tables = [pq.read_table(f) for f in files]
            table = pa.concat_tables(tables, promote_options="default") if tables else self.schema.empty_table()
            if sort and table.num_rows:
                table = table.sort_by([(k, "ascending") for k in self.keys])
            check_unique(table, self.keys, self.parts_dir)
            write_table_atomic(table, self.shard_path)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        if self.shard.is_whole:
            return self.final_path
        merged = merge_shards(self.final_path, self.shard.count, self.keys)
        return merged or self.shard_path


def shard_files(final_path: Path, count: int) -> list[Path]:
    return [final_path.with_name(final_path.stem + Shard(i, count).suffix + ".parquet") for i in range(count)]


def merge_shards(final_path: str | Path, count: int, keys: list[str]) -> Path | None:
    """Merge the N shard files into ``final_path`` once all exist; None while some are missing."""
    final_path = Path(final_path)
    with file_lock(final_path):
        if final_path.exists():
            return final_path
        files = shard_files(final_path, count)
        if not all(f.exists() for f in files):
            return None
        table = pa.concat_tables([read_table(f) for f in files], promote_options="default")
        if table.num_rows:
            table = table.sort_by([(k, "ascending") for k in keys])
        check_unique(table, keys, final_path)
        write_table_atomic(table, final_path)
        for f in files:
            f.unlink()
        return final_path


def filter_keys(table: pa.Table, column: str, allowed: set) -> pa.Table:
    return table.filter(pc.is_in(table[column], value_set=pa.array(sorted(allowed), type=table.schema.field(column).type)))


__all__ = ["PartWriter", "merge_shards", "shard_files", "filter_keys", "RunDirError"]
