#!/usr/bin/env python3
"""Prints the benchmark figures and the ratios BENCHMARKS.md records.

Reads what the last benchmark run left in the Cargo target directory:

- criterion's estimates, <target>/criterion/**/new/{benchmark,estimates}.json
  (`cargo bench --bench auth`); the median of each benchmark is used;
- <target>/bench-results/paired.json (`cargo bench --bench paired`): the
  same figures measured interleaved, a second column of ratios;
- <target>/bench-results/scaling.json (`cargo bench --bench scaling`);
- <target>/bench-results/loopback.json (`cargo bench --bench loopback`).

The PostgreSQL rows (`postgres/...`) exist only when the `postgres` bench of
the tower-token-auth-sqlx crate ran (`cargo bench -p tower-token-auth-sqlx
--bench postgres`); it measures the memory store in the same run
(`postgres/memory_baseline`), and the cached ratio is to that figure.

Usage: scripts/bench-ratios.py [--target-dir DIR]   (default: $CARGO_TARGET_DIR or target)

Prints Markdown tables; a missing input leaves its rows as "not run".
"""

import argparse
import datetime
import json
import os
import pathlib
import sys


def criterion_medians(target):
    """full benchmark id -> (median ns, lower ns, upper ns, mtime)."""
    out = {}
    for bench in (target / "criterion").glob("**/new/benchmark.json"):
        estimates = bench.with_name("estimates.json")
        if not estimates.exists():
            continue
        full_id = json.loads(bench.read_text())["full_id"]
        median = json.loads(estimates.read_text())["median"]
        interval = median["confidence_interval"]
        out[full_id] = (
            median["point_estimate"],
            interval["lower_bound"],
            interval["upper_bound"],
            estimates.stat().st_mtime,
        )
    return out


def load(path):
    if not path.exists():
        return None, None
    return json.loads(path.read_text()), path.stat().st_mtime


def when(mtime):
    return datetime.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--target-dir",
        default=os.environ.get("CARGO_TARGET_DIR", "target"),
        help="the Cargo target directory the benchmarks ran in",
    )
    target = pathlib.Path(parser.parse_args().target_dir)

    times = criterion_medians(target)
    scaling, scaling_at = load(target / "bench-results" / "scaling.json")
    loopback, loopback_at = load(target / "bench-results" / "loopback.json")
    if not times and scaling is None and loopback is None and not (target / "bench-results" / "paired.json").exists():
        sys.exit(f"no benchmark results under {target}: run scripts/bench.sh first")

    def t(name):
        return times[name][0] if name in times else None

    print("## Time per request (criterion median, ns)\n")
    print("| benchmark | median | 95% interval | measured |")
    print("|---|---:|---|---|")
    for name in sorted(times, key=order):
        median, lower, upper, mtime = times[name]
        print(f"| `{name}` | {median:.1f} | {lower:.1f} – {upper:.1f} | {when(mtime)} |")
    print()

    paired, paired_at = load(target / "bench-results" / "paired.json")
    pt = paired["median_ns"] if paired else {}

    def ratios(t):
        """The per-request ratios from one set of medians (name -> ns)."""
        base, floor = t.get("baseline"), t.get("sha256_floor")
        small, large = t.get("token_auth/memory/1k"), t.get("token_auth/memory/1m")
        jwt, minimal = t.get("jwt_hs256"), t.get("minimal_auth")
        overhead = small - base if None not in (small, base) else None
        jwt_overhead = jwt - base if None not in (jwt, base) else None
        out = {
            "overhead": overhead,
            "overhead_floor": overhead / floor if overhead and floor else None,
            "scale": large / small if large and small else None,
            "jwt": overhead / jwt_overhead if overhead and jwt_overhead else None,
            "minimal_floor": (minimal - base) / floor if None not in (minimal, base, floor) else None,
            "vs_minimal": overhead / (minimal - base) if None not in (overhead, minimal, base) else None,
        }
        for name in REJECTIONS:
            out[name] = t[name] / small if name in t and small else None
        return out

    c = ratios({name: v[0] for name, v in times.items()})
    p = ratios(pt)
    floor = {"criterion": t("sha256_floor"), "paired": pt.get("sha256_floor")}

    rows = []

    def fmt(value, spec):
        return "not run" if value is None else format(value, spec)

    def row(measure, key, spec, target_text, ok, note=""):
        a, b = c.get(key), p.get(key)
        judged = a if a is not None else b
        verdict = "—" if judged is None else ("pass" if ok(judged) else "MISS")
        if a is not None and b is not None and ok(a) != ok(b):
            verdict = "pass (criterion) / MISS (paired)" if ok(a) else "MISS (criterion) / pass (paired)"
        rows.append((measure, fmt(a, spec), fmt(b, spec), target_text, verdict, note))

    floors = " / ".join(fmt(3 * f, ".0f") if f else "—" for f in floor.values())
    row("overhead = `token_auth/memory/1k` − `baseline` (ns)", "overhead", ".0f",
        f"≤ 3 × `sha256_floor` ({floors})",
        lambda v: True, "judged by the next row")
    rows[-1] = rows[-1][:4] + ("—",) + rows[-1][5:]
    row("overhead ÷ `sha256_floor`", "overhead_floor", ".2f", "≤ 3", lambda v: v <= 3)
    row("(`minimal_auth` − `baseline`) ÷ `sha256_floor`: the least a principal-setting check costs", "minimal_floor", ".2f",
        "(reference)", lambda v: True, "see BENCHMARKS.md")
    rows[-1] = rows[-1][:4] + ("—",) + rows[-1][5:]
    row("overhead ÷ (`minimal_auth` − `baseline`)", "vs_minimal", ".2f", "≤ 1.5", lambda v: v <= 1.5)
    row("scale: `memory/1m` ÷ `memory/1k`", "scale", ".2f", "≤ 1.8", lambda v: v <= 1.8)
    row("against JWT: overhead ÷ (`jwt_hs256` − `baseline`)", "jwt", ".3f", "≤ 0.25",
        lambda v: v <= 0.25)
    for name in REJECTIONS:
        row(f"`{name}` ÷ `memory/1k`", name, ".2f", "≤ 1.5", lambda v: v <= 1.5)

    def single(measure, value, spec, target_text, ok, note):
        verdict = "—" if value is None else ("pass" if ok(value) else "MISS")
        rows.append((measure, fmt(value, spec), "", target_text, verdict, note))

    quick = " (test mode: not a measurement)" if scaling and scaling.get("quick") else ""
    par = scaling["parallel"] if scaling else None
    n = par.get("threads", 2) if par else 2

    def eff(run):
        return run.get("efficiency", run["ratio"] / n)

    single(f"parallel: {n} threads ÷ 1 thread, memory/1k stack (clone per request)",
           par["token_auth"]["ratio"] if par else None, ".2f", "≥ 1.85" if n == 2 else "(reference)",
           (lambda v: v >= 1.85) if n == 2 else (lambda v: True),
           f"efficiency {eff(par['token_auth']):.3f}; bare echo: {par['baseline']['ratio']:.2f}"
           f" (efficiency {eff(par['baseline']):.3f})"
           + (f"; one readied service per thread: {par['token_auth_ready']['ratio']:.2f}" if "token_auth_ready" in par else "")
           + f"; load average {par['load_average']:.2f}{quick}"
           if par else "cargo bench --bench scaling")
    if par and "token_auth_leaked" in par:
        leaked = par["token_auth_leaked"]
        single(f"parallel: {n} threads ÷ 1 thread, the same stack with its layers leaked (clone per request)",
               leaked["ratio"], ".2f", "≥ 1.85" if n == 2 else "(reference)",
               (lambda v: v >= 1.85) if n == 2 else (lambda v: True),
               f"efficiency {eff(leaked):.3f}; TokenAuthLayer::leak, RequireScopeLayer::leak"
               + (f"; the floor stack (`minimal_auth`, no shared write): {par['minimal_auth_ready']['ratio']:.2f}"
                  if "minimal_auth_ready" in par else "")
               + quick)
    mem = scaling["memory"] if scaling else None
    single(f"memory: resident bytes per token ({mem['tokens']:,} tokens)" if mem
           else "memory: resident bytes per token", mem["bytes_per_token"] if mem else None,
           ".0f", "≤ 256", lambda v: v <= 256,
           "VmRSS after − before filling the store" + quick)
    single("loopback: authenticated ÷ unauthenticated (wrk)",
           loopback["ratio"] if loopback else None, ".3f", "≥ 0.97", lambda v: v >= 0.97,
           f"median round {loopback['median_round_ratio']:.3f}"
           + (f"; the floor check (`MinimalAuth`) on the same server: {loopback['floor_ratio']:.3f}"
              if "floor_ratio" in loopback else "")
           + f"; {when(loopback_at)}"
           if loopback else "cargo bench --bench loopback")
    def pg_ratio(measure, top, bottom, target_text, limit, extra=""):
        """A ratio of two criterion figures of the PostgreSQL rows."""
        if top not in times or bottom not in times:
            rows.append((measure, "not run", "", target_text, "—",
                         "cargo bench -p tower-token-auth-sqlx --bench postgres (needs PostgreSQL, see BENCHMARKS.md)"))
            return
        (a, _, _, a_at), (b, _, _, b_at) = times[top], times[bottom]
        note = extra
        if abs(a_at - b_at) > SAME_RUN_SECONDS:
            note = (f"measured {abs(a_at - b_at) / 60:.0f} min apart: not one run; "
                    + note).rstrip("; ")
        single(measure, a / b, ".2f", target_text, lambda v: v <= limit, note)

    memory = next((name for name in ("postgres/memory_baseline", "token_auth/memory/1k") if name in times),
                  "postgres/memory_baseline")
    pg_ratio(f"PostgreSQL, cached: `postgres/cached_hit` ÷ `{memory}`",
             "postgres/cached_hit", memory, "≤ 1.1", 1.1)
    gap = (f"`uncached` − `select_1` = {(t('postgres/uncached') - t('postgres/select_1')) / 1000:.1f} µs"
           if t("postgres/uncached") and t("postgres/select_1") else "")
    if gap and t("postgres/store_find"):
        gap += f"; `store_find` ÷ `select_1` = {t('postgres/store_find') / t('postgres/select_1'):.2f}"
    pg_ratio("PostgreSQL, uncached: `postgres/uncached` ÷ `postgres/select_1`",
             "postgres/uncached", "postgres/select_1", "≤ 1.3", 1.3, gap)

    if paired:
        print(f"## Interleaved (`benches/paired.rs`, median ns, {when(paired_at)})\n")
        print("| benchmark | median |")
        print("|---|---:|")
        for name in sorted(pt, key=order):
            print(f"| `{name}` | {pt[name]:.1f} |")
        print()

    print("## Ratios\n")
    print("| measure | criterion | paired | target | result | note |")
    print("|---|---:|---:|---|---|---|")
    for measure, a, b, target_text, result, note in rows:
        print(f"| {measure} | {a} | {b} | {target_text} | {result} | {note} |")
    if scaling_at:
        print(f"\nscaling.json written {when(scaling_at)}")


# Two criterion figures written further apart than this did not come from
# one run of the auth bench (a whole run takes a few minutes).
SAME_RUN_SECONDS = 15 * 60

REJECTIONS = [
    "rejections/missing_header",
    "rejections/bad_checksum",
    "rejections/unknown_token",
    "rejections/insufficient_scope",
]

ORDER = ["baseline", "sha256_floor", "token_auth/", "rejections/", "tower_http_bearer", "minimal_auth", "jwt_hs256", "postgres/", "parts/"]


def order(name):
    for i, prefix in enumerate(ORDER):
        if name.startswith(prefix):
            return (i, name)
    return (len(ORDER), name)


if __name__ == "__main__":
    main()
