#!/usr/bin/env python3
"""Regenerates the README's result tables from the data files they name (never edited by hand).

    python3 benchmarks/render-readme.py            # rewrite the generated blocks of README.md
    python3 benchmarks/render-readme.py --check    # exit 1 if README.md differs from its data

A generated block sits between
    <!-- generated: NAME (source: PATH) -->
    <!-- end generated: NAME -->
and NAME picks the renderer below. Sources:
  - throughput: benchmarks/results/throughput-*.json and batch-curve.json (benchmarks/eval-throughput.sh,
    sirius-worker bench --batch-sizes … -o json), through benchmarks/render-throughput.py;
  - report:PATH: a run's report as JSON (`sirius-coord report RUN --format json > PATH`), the paper-style
    table of every sparse method with its Sirius correction: accuracy with its 95 % interval,
    answered, AAL and effective density;
  - figure:PATH: an SVG figure written by `sirius-coord report RUN --format svg --out DIR`;
  - methods:PATH: `sirius-worker bench --methods … -o json` (benchmarks/sirius-methods.sh with
    OUT=PATH), every method's speed, densities, AAL and the CPU cost model;
  - engine:PATH: benchmarks/engine-vs-llama.sh with OUT=PATH, decode and prompt speed beside llama.cpp;
  - accuracy:PATH: a run's report as JSON, one row per task (accuracy of the first method).

    python3 benchmarks/render-readme.py --print NAME:PATH   # print one block (the scripts' own output)
"""
import json
import os
import re
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
readme = os.path.join(root, "README.md")
block = re.compile(r"(<!-- generated: (\S+) \(source: ([^)]+)\) -->\n)(.*?)(<!-- end generated: \2 -->)", re.S)


def pct(x):
    return "%.0f %%" % (100 * x)


def interval(m):
    return "%s [%.0f, %.0f]" % (pct(m["accuracy"]), 100 * m["accuracyLow"], 100 * m["accuracyHigh"])


def report_table(path):
    r = json.load(open(os.path.join(root, path)))
    out = []
    for t in r["tasks"]:
        ms = t["methods"]
        full = next((m for m in ms if m["kind"] == "full"), None)
        sparse = [m for m in ms if m["kind"] == "sparse"]
        out.append("| %s, n = %d | density | accuracy [95 %% CI] | answered | agreement with full | AAL | eff. density |" % (t["task"], t["n"]))
        out.append("|---|---:|---|---:|---:|---:|---:|")
        if full:
            out.append("| full | 1 | %s | %d | – | – | – |" % (interval(full), full["answered"]))
        for s in sorted(sparse, key=lambda m: (m["method"].split("@")[0], m.get("density") or 0)):
            rows = [s] + [m for m in ms if m["kind"] == "sirius" and m.get("density") == s.get("density")
                          and m["method"].split("/")[1].split("@")[0] == s["method"].split("@")[0]]
            for m in rows:
                agree = "%s (n = %d)" % (pct(m["agreementWithFull"]), m["agreementN"]) if m.get("agreementWithFull") is not None else "–"
                aal = "%.2f/%d" % (m["aal"], m["period"]) if m.get("aal") is not None else "–"
                eff = "%.3f" % m["effectiveDensity"] if m.get("effectiveDensity") is not None else "–"
                out.append("| %s | %g | %s | %d | %s | %s | %s |" % (m["method"], m["density"], interval(m), m["answered"], agree, aal, eff))
        tp = r.get("throughput")
        note = "Run `%s`, %s numerics, %s." % (r["runId"], r["numerics"], ", ".join(r["devices"]))
        if tp:
            note += " %d results in %.0f s (%.2f results/s, %d workers)." % (tp["results"], tp["seconds"], tp["results"] / max(tp["seconds"], 1e-9), tp["workers"])
        out.append("")
        out.append(note)
    return "\n".join(out) + "\n"


def figure(path):
    name = os.path.splitext(os.path.basename(path))[0]
    if not os.path.exists(os.path.join(root, path)):
        raise SystemExit("render-readme: %s is missing (write it with `sirius-coord report RUN --format svg --out DIR`)" % path)
    return "![%s](%s)\n" % (name, path)


def methods_table(path):
    b = json.load(open(os.path.join(root, path)))

    def f(v, fmt="%.3f"):
        return fmt % v if isinstance(v, (int, float)) else "–"

    out = ["| method | K | mean period | density | model density | param density | AAL | eff. density | tok/s | time ratio to full | verify pass ÷ full step | cost model | measured / model | accuracy (answered) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    seen = set()
    for j in b["results"]:
        acc = "%.0f %% (%d)" % (100 * j["accuracy"], j.get("answered", 0)) if "accuracy" in j else "–"
        # A method listed twice (FULL_AFTER=1's second full) is named as the repeat it is.
        key = (j["method"], j.get("period"))
        name = j["method"] + (" (again)" if key in seen else "")
        seen.add(key)
        out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, j.get("period", "–"), f(j.get("mean_period"), "%.2f"), "%g" % j["density"] if "density" in j else "1", f(j.get("model_density")),
            f(j.get("param_density")), f(j.get("aal"), "%.2f"), f(j.get("effective_density")), f(j.get("tokens_per_second"), "%.2f"),
            f(j.get("time_ratio")), f(j.get("verify_pass_in_decode_steps"), "%.2f"), f(j.get("cost_model_ratio")),
            f(j.get("measured_over_cost_model")), acc))
    out.append("")
    out.append("%d %s prompts, %d thread(s), %s numerics, τ = %g, acceptance %s; a dense K-token pass after the first prompt: %s." % (
        b["prompts"], b.get("task", ""), b["threads"], b["numerics"], b["threshold"], b["acceptance"],
        ", ".join("K=%s %.1f ms" % (k, 1000 * v) for k, v in sorted(b.get("verify_pass_seconds", {}).items(), key=lambda kv: int(kv[0])))))
    return "\n".join(out) + "\n"


def engine_table(path):
    b = json.load(open(path if os.path.isabs(path) else os.path.join(root, path)))
    out = ["| test | threads | numerics | sirius-worker t/s | llama.cpp t/s | ratio |", "|---|---:|---|---:|---:|---:|"]
    for r in b["rows"]:
        out.append("| %s | %d | %s | %.1f ± %.1f | %.1f ± %.1f | %.2f |" % (
            r["test"], r["threads"], r["numerics"], r["sirius_tps"], r["sirius_sd"], r["llama_tps"], r["llama_sd"],
            r["sirius_tps"] / r["llama_tps"]))
    out.append("")
    out.extend(b["bandwidth"])
    out.append("load time: %.3f s" % b["load_seconds"])
    return "\n".join(out) + "\n"


# How each task is prompted and scored (labels for the accuracy table; sirius-method.md §6).
TASK_LABELS = {
    "gsm8k-cot": ("gsm8k-cot (8 fixed CoT exemplars)", 'strict "The answer is N."'),
    "gsm8k": ("gsm8k (5-shot from train)", "strict `#### N`"),
    "csqa": ("csqa (5-shot CoT)", "accuracy"),
    "strategyqa": ("strategyqa (5-shot CoT)", "accuracy"),
    "date": ("date (5-shot CoT)", "accuracy"),
    "sports": ("sports (5-shot CoT)", "accuracy"),
    "humaneval": ("humaneval (0-shot)", "pass@1, sandboxed"),
}


def accuracy_table(path):
    r = json.load(open(os.path.join(root, path)))
    out = ["| task | metric | accuracy [95 % CI] | answered |", "|---|---|---|---:|"]
    for t in r["tasks"]:
        m = t["methods"][0]
        label, metric = TASK_LABELS.get(t["task"], (t["task"], "accuracy"))
        out.append("| %s | %s | %.1f %% [%.1f, %.1f] | %d / %d |" % (label, metric, 100 * m["accuracy"], 100 * m["accuracyLow"], 100 * m["accuracyHigh"], m["answered"], t["n"]))
    tp = r.get("throughput")
    note = "Run `%s`, %s numerics, %s." % (r["runId"], r["numerics"], ", ".join(r["devices"]))
    if tp:
        note += " %d results in %.0f s (%d workers)." % (tp["results"], tp["seconds"], tp["workers"])
    return "\n".join(out) + "\n\n" + note + "\n"


def cats_table(source):
    """CATS against full in separate interleaved runs (benchmarks/cats-vs-full.sh): one row per
    `cats-T-dD-tN.json` in the source folder, beside the same run repeated (the same file name under
    `repeat/`, if there) and the suite's CATS ratio for the same configuration."""
    folder = os.path.join(root, source)
    out = ["| task | density | threads | full tok/s | CATS time ratio | target (model density + 0.05) | full (again) ratio | repeat: CATS / full (again) | suite's CATS ratio |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(os.listdir(folder)):
        m = re.fullmatch(r"cats-(.+)-d([0-9.]+)-t([0-9]+)\.json", name)
        if not m:
            continue
        def ratios(path):  # the run's first full row, its CATS row, and the second full row's ratio
            rows = json.load(open(path))["results"]
            again = [r for r in rows[1:] if r["method"] == "full"]
            return rows[0], next(r for r in rows if r["method"].startswith("cats")), "%.3f" % again[0]["time_ratio"] if again else "–"
        full, cats, again = ratios(os.path.join(folder, name))
        suite = os.path.join(folder, "methods-%s-d%s-t%s.json" % m.groups())
        sc = next((r["time_ratio"] for r in json.load(open(suite))["results"] if r["method"].startswith("cats")), None) if os.path.exists(suite) else None
        target = cats["model_density"] + 0.05
        repeat = os.path.join(folder, "repeat", name)
        met = lambda ratio: "%.3f%s" % (ratio, " (met)" if ratio <= target else "")
        rep = "–"
        if os.path.exists(repeat):
            _, rc, ra = ratios(repeat)
            rep = "%s / %s" % (met(rc["time_ratio"]), ra)
        out.append("| %s | %s | %s | %.1f | %s | %.3f | %s | %s | %s |" % (
            m.group(1), m.group(2), m.group(3), full["tokens_per_second"], met(cats["time_ratio"]),
            target, again, rep, "%.3f" % sc if sc is not None else "–"))
    return "\n".join(out) + "\n"


def text_output(source):
    """A benchmark's own text output (e.g. benchmarks/kernels/pass-cost.sh's table), as a code block."""
    return "```\n" + open(os.path.join(root, source)).read().rstrip("\n") + "\n```\n"


def throughput(_):
    return subprocess.run([sys.executable, os.path.join(root, "benchmarks", "render-throughput.py")],
                          check=True, capture_output=True, text=True).stdout


def render(name, source):
    if name == "throughput":
        return throughput(source)
    if name.startswith("report"):
        return report_table(source)
    if name.startswith("figure"):
        return figure(source)
    if name.startswith("cats"):
        return cats_table(source)
    if name.startswith("methods"):
        return methods_table(source)
    if name.startswith("engine"):
        return engine_table(source)
    if name.startswith("accuracy"):
        return accuracy_table(source)
    if name.startswith("output"):
        return text_output(source)
    raise SystemExit("render-readme: no renderer for block %r" % name)


def main():
    if "--print" in sys.argv:
        name, _, path = sys.argv[sys.argv.index("--print") + 1].partition(":")
        sys.stdout.write(render(name, path))
        return
    text = open(readme).read()
    new = block.sub(lambda m: m.group(1) + render(m.group(2), m.group(3).strip()) + m.group(5), text)
    if "--check" in sys.argv:
        if new != text:
            print("render-readme: README.md differs from its data; run python3 benchmarks/render-readme.py", file=sys.stderr)
            sys.exit(1)
        print("render-readme: README.md matches its data (%d blocks)" % len(block.findall(text)))
        return
    open(readme, "w").write(new)
    print("render-readme: %d blocks regenerated" % len(block.findall(new)))


if __name__ == "__main__":
    main()
