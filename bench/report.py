"""Benchmark results as a terminal table and as docs/BENCHMARKS.md."""

from __future__ import annotations

from typing import Any


def _s(d: dict[str, float]) -> str:
    return f"{d['median']:.2f} s ({d['min']:.2f}-{d['max']:.2f}, {d['runs']} runs)"


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for size, r in results["transform"].items():
        n = int(size)
        out += [
            (f"[{n:,} items] raw zone generated", f"{r['generate_s']:.1f} s, {r['playlists']:,} playlists"),
            (f"[{n:,}] parse floor (read + parse every raw file a rebuild reads)", _s(r["parse_floor_s"])),
            (f"[{n:,}] parse of the playlist item pages alone", _s(r["parse_floor_item_pages_s"])),
            (f"[{n:,}] transform, full rebuild", _s(r["rebuild_s"])),
            (f"[{n:,}] rebuild throughput", f"{r['rebuild_items_per_s']:,.0f} items/s"),
            (f"[{n:,}] rebuild / parse floor", f"{r['rebuild_vs_parse_floor']:.2f}x"),
            (f"[{n:,}] incremental merge, 10% of playlists changed", _s(r["incremental_s"])),
            (
                f"[{n:,}] raw zone bytes (gzip / uncompressed)",
                f"{r['raw_bytes']['compressed'] / 2**20:,.1f} MiB / {r['raw_bytes']['uncompressed'] / 2**20:,.1f} MiB",
            ),
            (
                f"[{n:,}] table bytes (Parquet)",
                f"{r['table_bytes'] / 2**20:,.1f} MiB = {r['tables_vs_raw_uncompressed']:.1%} of raw uncompressed",
            ),
            (f"[{n:,}] peak RSS, transform (rebuild)", f"{r['transform_peak_rss_mib']:,.0f} MiB"),
            (
                f"[{n:,}] peak RSS, rebuild with DuckDB capped at 1 GB (`SPOTIFY_PIPELINE_MEMORY_LIMIT=1GB`)",
                f"{r['bounded_transform_peak_rss_mib']:,.0f} MiB ({r['bounded_transform_s']:.1f} s with process start)",
            ),
        ]
        if "query_engine_load_s" in r:
            out.append((f"[{n:,}] load tables for the reports (once)", f"{r['query_engine_load_s']:.2f} s"))
        worst = max(r["query_latency_ms"].items(), key=lambda kv: kv[1]["p50"])
        out.append(
            (f"[{n:,}] slowest report p50 / p95", f"{worst[0]}: {worst[1]['p50']:.1f} / {worst[1]['p95']:.1f} ms")
        )
        if r.get("tutorial_s") is not None:
            out.append(
                (
                    f"[{n:,}] tutorial baseline (pandas + CSV)",
                    f"{r['tutorial_s']:.2f} s; ours is {r['speedup_vs_tutorial']:.1f}x faster",
                )
            )
        if r.get("dlt_s") is not None:
            out.append(
                (
                    f"[{n:,}] dlt baseline (normalizer -> DuckDB)",
                    f"{r['dlt_s']:.2f} s; ours is {r['speedup_vs_dlt']:.1f}x faster",
                )
            )
    for key in ("extract", "extract_1s_window"):
        if key in results:
            out += _extract_rows(results[key])
    if "extract_unlimited" in results:
        e = results["extract_unlimited"]
        out.append(
            (
                f"[extract {e['items']:,} items, {e['latency_ms']} ms latency, no limit: what the harness serves]",
                f"{e['active_rate']:.1f} req/s first to last request ({e['requests']:,} requests, "
                f"{e['active_s']:.1f} s)",
            )
        )
    return out


def _extract_rows(e: dict[str, Any]) -> list[tuple[str, str]]:
    window = e.get("rate_window_s", 1.0)
    allowed = f"{e['rate_limit']} req/s = {round(e['rate_limit'] * window):,} per rolling {window:g} s window"
    out = [
        (
            f"[extract {e['items']:,} items, {e['latency_ms']} ms latency, {allowed}]",
            f"{e['requests']:,} requests, minimum {e['minimum_requests']:,} ({e['requests_vs_minimum']:.3f}x)",
        ),
        (
            "  achieved request rate, first to last request",
            f"{e['active_rate']:.1f} req/s = {e['active_rate_share']:.0%} of the limit ({e['active_s']:.1f} s)",
        ),
        (
            "  requests / whole wall time (with process start)",
            f"{e['achieved_rate']:.1f} req/s = {e['rate_share']:.0%} of the limit",
        ),
        (
            "  wall time vs the bound the limit sets",
            f"{e['wall_s']:.1f} s vs {e['bound_s']:.1f} s ({e['wall_vs_bound']:.2f}x)",
        ),
        ("  429s received", f"{e['throttled_429']}"),
        ("  peak RSS, extraction", f"{e['extract_peak_rss_mib']:,.0f} MiB"),
    ]
    if "unchanged_requests_per_playlist" in e:
        out.append(
            (
                "  nothing changed: per playlist",
                f"{e['unchanged_requests_per_playlist']:.2f} requests, "
                f"{e['unchanged_seconds_per_playlist'] * 1000:.1f} ms",
            )
        )
    return out


def table(results: dict[str, Any]) -> str:
    width = max(len(k) for k, _ in rows(results))
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows(results))


HAND_WRITTEN = "\n## What changed"  # docs/BENCHMARKS.md from this heading on is written by hand


def refresh(page: str, generated: str) -> str:
    """The benchmarks page with its generated part replaced and its hand-written part (analysis, targets,
    measurements made by hand) kept."""
    start = page.find(HAND_WRITTEN)
    return generated if start < 0 else generated.rstrip("\n") + "\n" + page[start:]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Measured by `bench/` (`make bench`; `make bench-quick` for CI-sized data). Numbers below are from one",
        "run of the command shown, on the machine shown; absolute times on a shared machine are noisy, so compare",
        "the ratios measured within the same run. Raw JSON results: `bench/results/` (not committed).",
        "Transform and extraction are timed through the library API, as a user's code calls them",
        "(`Lake.transform()`, `Lake.extract()`): a transform includes the lake's lock and its `pipeline_runs` record.",
        "",
        f"- Command: `{results['command']}` ({results['repeat']} runs per timed scenario; median and range)",
        f"- Started: {results['started']}",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}",
        f"- Software: Python {m['python']}, DuckDB {m['duckdb']}, pyiceberg {m['pyiceberg']}",
        "- Data: generated by the simulator's catalog (playlists of ~100 items plus one of 5,000; every quirk;",
        "  `item` and deprecated `track` both present in every item, as the API sends them).",
        "",
        "| measurement | result |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in rows(results)]
    lines += ["", "## Query latency of every named report (ms, 20 runs each)", ""]
    for size, r in results["transform"].items():
        lines += [f"At {int(size):,} items:", "", "| query | p50 | p95 |", "|---|---|---|"]
        lines += [f"| {name} | {v['p50']:.1f} | {v['p95']:.1f} |" for name, v in r["query_latency_ms"].items()]
        lines.append("")
    return "\n".join(lines) + "\n"
