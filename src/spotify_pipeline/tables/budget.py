"""How much a `maintain` pass may rewrite beyond what readers need (issue #20: the lake within 1.5x its
tables' bytes at every point of a week of hourly runs, not only on average).

Every byte a pass rewrites stays in the lake beside its replacement for as long as the retention keeps a
snapshot that reads the old copy (`table_history_days`: W runs' worth). A pass always rewrites what
readers need (a data file more than `maintenance.COMPACT_DELETED_SHARE` deleted, small files past
`maintenance.MERGE_ALWAYS_PAST`); beyond that it rewrites early only while the lake's data and delete files
(old copies included) stay within a bound of its tables': a file bigger than two compaction units within
`SPLIT_BOUND`, small files past `maintenance.MERGE_FILES_PAST` within `LAKE_BOUND`, files past
`EARLY_DELETED_SHARE` deleted (most first) within `DELETES_BOUND`. The rest of the 1.5x is the metadata's
and the runs' until the next pass (the files they replace). So the deletes are folded early and a few
files at a time when the lake has room, rather than whole files of a third of the lake at once when they
pass the share (the 1.7-1.9x peaks of a week at 100k: docs/BENCHMARKS.md, "A week within 1.5x at every
point").

A compaction writes files of about `UNIT_SHARE` of the lake's table bytes (at most `PUBLISH_ROWS` rows), so
at 100k a table is rewritten a tenth of the lake at a time, and at 1M and beyond in `PUBLISH_ROWS`-row
files as a rebuild writes them. Pure arithmetic: maintenance.py measures and commits.
"""

from __future__ import annotations

from dataclasses import dataclass

# The lake's data and delete files (current, and kept for older snapshots) over the tables' (current) that
# an early rewrite may reach: 1.5 less the metadata (manifests, manifest lists, metadata.json: ~0.1 of the
# tables at 100k with 6 runs kept) and the room runs take until the next pass (the files they replace).
LAKE_BOUND = 1.25
# A file of more than two units (the 50,000-row files a rebuild writes, a third of the lake at 100k) is split
# once; the lake's cheapest moment is when it holds few old copies, so that lump may reach this instead.
SPLIT_BOUND = 1.35
# Files past `EARLY_DELETED_SHARE` are rewritten within this bound. A lower one (1.2), to keep room for the
# merges of small files that otherwise wait until `maintenance.MERGE_ALWAYS_PAST` and go in one lump, made
# the week worse at 100k (worst 1.86x vs 1.71x: the deletes then waited and went in lumps; BENCHMARKS.md).
DELETES_BOUND = 1.25
EARLY_DELETED_SHARE = 0.2  # under it a file keeps its deletes: readers pay little, a rewrite costs the file
UNIT_SHARE = 0.1  # of the lake's table bytes: the most one compacted file adds to the lake
MIN_FILE_ROWS = 1_000  # never smaller files than this (each costs every reader a file to open)


@dataclass
class LakeBudget:
    """The lake's bytes and its tables' bytes as a pass's rewrites change them."""

    lake_bytes: float
    table_bytes: float
    bound: float

    def fits(self, size: int, deleted_share: float, *, kept: bool, bound: float | None = None) -> bool:
        """Whether rewriting a file of `size` bytes (a share of its rows deleted) keeps the lake within
        the bound (or `bound`); `kept`: a kept snapshot still reads the old copy, so it stays beside the new."""
        lake, tables = self._after(size, deleted_share, kept)
        # one that shrinks the lake always fits
        return lake <= self.lake_bytes or lake <= (bound or self.bound) * tables

    def charge(self, size: int, deleted_share: float, *, kept: bool) -> None:
        """Count a rewrite in (one that fits, or one readers need whatever the bound)."""
        self.lake_bytes, self.table_bytes = self._after(size, deleted_share, kept)

    def _after(self, size: int, deleted_share: float, kept: bool) -> tuple[float, float]:
        new = size * (1 - deleted_share)  # its live rows, about as well compressed
        return self.lake_bytes + new - (0 if kept else size), self.table_bytes - size + new


def unit_rows(unit_bytes: float, table_file_bytes: int, table_rows: int, publish_rows: int) -> int:
    """Rows per file a compaction of a table writes: about `unit_bytes` at the table's bytes per row, at
    least `MIN_FILE_ROWS` and at most `publish_rows` (never more than a rebuild writes)."""
    per_row = table_file_bytes / max(1, table_rows)
    wanted = int(unit_bytes / per_row) if per_row > 0 else publish_rows
    return min(publish_rows, max(MIN_FILE_ROWS, wanted))
