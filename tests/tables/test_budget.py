"""The lake bound's arithmetic (budget.py): an early rewrite fits while the lake, with the new copy beside
the old one a kept snapshot still reads, stays within the bound; compacted files are about a unit."""

from __future__ import annotations

from spotify_pipeline.tables.budget import MIN_FILE_ROWS, LakeBudget, unit_rows


def test_a_rewrite_fits_while_the_lake_with_both_copies_stays_within_the_bound() -> None:
    budget = LakeBudget(lake_bytes=130, table_bytes=100, bound=1.35)
    # 10 bytes, 20% deleted: the new copy adds 8 and the tables shrink by 2: 138 > 1.35 * 98
    assert not budget.fits(10, 0.2, kept=True)
    # the same file when no kept snapshot reads the old copy: 128 <= 132.3
    assert budget.fits(10, 0.2, kept=False)
    # a smaller one fits, and counts: the next must fit in what is left
    assert budget.fits(4, 0.5, kept=True)
    budget.charge(4, 0.5, kept=True)
    assert (budget.lake_bytes, budget.table_bytes) == (132, 98)
    assert not budget.fits(4, 0.5, kept=True)


def test_compacted_files_hold_about_a_unit_of_bytes_within_the_row_bounds() -> None:
    assert unit_rows(1_000_000, 3_500_000, 29_000, 50_000) == 8285  # ~120 bytes a row
    assert unit_rows(100_000_000, 3_500_000, 29_000, 50_000) == 50_000  # never more than a rebuild's files
    assert unit_rows(10, 3_500_000, 29_000, 50_000) == MIN_FILE_ROWS
    assert unit_rows(10, 3_500_000, 29_000, 30) == 30
