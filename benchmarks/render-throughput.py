#!/usr/bin/env python3
"""The README's throughput tables, from the benchmark JSON files (never edited by hand).

    python3 benchmarks/render-throughput.py [benchmarks/results]

Reads throughput-*.json (benchmarks/eval-throughput.sh) and batch-curve.json
(`sirius-worker bench --batch-sizes … -o json`) and prints Markdown.
"""
import glob
import json
import os
import sys

d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")

runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(d, "throughput-*.json")))]
if runs:
    print("| task | examples × methods | run | served s | results/s | speed-up | result hashes equal | prefix tokens reused | worker peak RSS |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        for name in ("baseline", "batched"):
            x = r[name]
            # Files written before the batch size was recorded were all measured at the default of then, 8.
            label = "batch 1, no prefix cache" if name == "baseline" else "defaults: batch %d, prefix cache" % x.get("batch_size", 8)
            reused = x.get("reused_prompt_tokens") or 0
            share = "%.1f %%" % (100.0 * reused / x["prompt_tokens"]) if x.get("prompt_tokens") else "–"
            rss = "%.0f MiB" % max(x["worker_peak_rss_mib"]) if x["worker_peak_rss_mib"] else "–"
            speed = "%.2f×" % r["speedup_results_per_second"] if name == "batched" else "1"
            equal = "%d / %d" % (r["hashes_equal"], r["hashes_compared"]) if name == "batched" else ""
            print("| %s | %d × 3 | %s | %.0f | %.3f | %s | %s | %s | %s |" % (
                r["task"], r["limit"], label, x["served_seconds"], x["results_per_second"], speed, equal, share, rss))
    print()

curve = os.path.join(d, "batch-curve.json")
if os.path.exists(curve):
    c = json.load(open(curve))
    rows = c["results"]
    print("| numerics | threads | context | " + " | ".join("B = %d" % r["batch_size"] for r in rows if r["numerics"] == rows[0]["numerics"] and r["n_threads"] == rows[0]["n_threads"]) + " |")
    print("|---|---:|---:|" + "---:|" * len([r for r in rows if r["numerics"] == rows[0]["numerics"] and r["n_threads"] == rows[0]["n_threads"]]))
    keys = []
    for r in rows:
        k = (r["numerics"], r["n_threads"])
        if k not in keys:
            keys.append(k)
    for num, th in keys:
        sel = [r for r in rows if r["numerics"] == num and r["n_threads"] == th]
        base = sel[0]["tokens_per_second_per_thread"]
        cells = ["%.0f (%.2f×)" % (r["tokens_per_second_per_thread"], r["tokens_per_second_per_thread"] / base) for r in sel]
        print("| %s | %d | %d | %s |" % (num, th, sel[0]["n_prompt"], " | ".join(cells)))
