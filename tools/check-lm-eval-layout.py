#!/usr/bin/env python3
"""Checks sirius-coord's lm-eval export against the layout lm-evaluation-harness itself writes.

  record  [--lm-eval BIN] [--out FIXTURE]   run lm-eval's `dummy` model on a tiny local generate_until
                                            task (--log_samples --limit 3), extract the key structure
                                            (keys and JSON types, recursively) of its results JSON
                                            and of one samples line, and write it as FIXTURE
                                            (default: the committed Tests/CoordinatorTests/Fixtures/
                                            lm-eval-layout.json). lm-eval's own files are then
                                            checked against it, which tests this script's checker.
  compare RESULTS_JSON [--fixture FIXTURE]  check a results_<ts>.json written by sirius-coord (and the
                                            samples_<task>_<ts>.jsonl beside it) against FIXTURE:
                                            every key lm-eval writes is present with the same JSON
                                            type, unless Fixtures/lm-eval-omitted.json leaves it out
                                            with a reason; then the values' consistency (one line
                                            per sample, mean of the lines = the results value,
                                            stderr, and doc/prompt/target/task hashes recomputed as
                                            lm-eval computes them). Exits 1 on any missing key,
                                            wrong type or inconsistency.

`record` needs lm-eval (tools/check-lm-eval-layout.sh makes a virtualenv); `compare` only the standard
library. Names that differ per task or metric are placeholders in the fixture: `<task>` for the keys
of the per-task maps, `<metric>,<filter>` / `<metric>_stderr,<filter>` for the metric keys of a results
entry, `<metric>` for higher_is_better's keys and for a samples line's metric values; `doc` (the
dataset's own record) is opaque.
"""
import argparse
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "Tests" / "CoordinatorTests" / "Fixtures"
DEFAULT_FIXTURE = FIXTURES / "lm-eval-layout.json"
OMITTED = FIXTURES / "lm-eval-omitted.json"

# Top-level maps of the results file keyed by task name.
PER_TASK = ["results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "task_hashes"]

TASK_YAML = """task: sirius_layout_tiny
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  do_sample: false
  max_gen_toks: 32
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""

DOCS = [
    {"question": "What is 2 + 3?", "answer": "5"},
    {"question": "What is 7 - 4?", "answer": "3"},
    {"question": "What is 6 * 7?", "answer": "42"},
    {"question": "What is 9 / 3?", "answer": "3"},
]


def jtype(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


METRIC_KEY = re.compile(r"^(?P<metric>.+?),(?P<filter>.+)$")
STDERR_KEY = re.compile(r"^(?P<metric>.+)_stderr,(?P<filter>.+)$")


def placeholder_for(key, context):
    """The fixture's name for a key that differs per task/metric, or None."""
    if context == "entry":
        if STDERR_KEY.match(key):
            return "<metric>_stderr,<filter>"
        if METRIC_KEY.match(key):
            return "<metric>,<filter>"
    if context == "higher":
        return "<metric>"
    return None


def merge(a, b):
    """Union of two layout nodes (same type expected; keys united)."""
    if a is None:
        return b
    if b is None:
        return a
    if a["type"] != b["type"]:
        return {"type": "|".join(sorted(set(a["type"].split("|")) | set(b["type"].split("|"))))}
    out = dict(a)
    if a["type"] == "object":
        if "keys" in a or "keys" in b:
            keys = dict(a.get("keys", {}))
            for k, v in b.get("keys", {}).items():
                keys[k] = merge(keys.get(k), v)
            out["keys"] = keys
        if "each" in a or "each" in b:
            out["each"] = merge(a.get("each"), b.get("each"))
    if a["type"] == "array":
        out["items"] = merge(a.get("items"), b.get("items"))
    return out


def layout(v, context=None, metrics=()):
    """{"type": ...} with "keys" (objects), "each" (maps keyed by task), "items" (arrays), "opaque"."""
    t = jtype(v)
    if t == "array":
        items = None
        for x in v:
            items = merge(items, layout(x))
        return {"type": "array", "items": items}
    if t != "object":
        return {"type": t}
    if context == "opaque":
        return {"type": "object", "opaque": True}
    if context == "per-task":
        each = None
        for k, x in v.items():
            each = merge(each, layout(x))
        return {"type": "object", "each": each}
    keys = {}
    for k, x in v.items():
        ph = placeholder_for(k, context)
        if context == "sample" and k in metrics:
            ph = "<metric>"
        sub = None
        if context == "top" and k in PER_TASK:
            sub = "per-task"
        if context == "sample" and k == "doc":
            sub = "opaque"
        node = layout(x, sub)
        name = ph or k
        keys[name] = merge(keys.get(name), node)
    return {"type": "object", "keys": keys}


def results_layout(doc):
    node = layout(doc, "top")
    # Per-task children: results entries and higher_is_better maps have placeholder keys.
    for name, ctx in (("results", "entry"), ("higher_is_better", "higher")):
        each = None
        for x in doc.get(name, {}).values():
            each = merge(each, layout(x, ctx))
        node["keys"][name]["each"] = each
    return node


def sample_layout(line):
    return layout(line, "sample", metrics=set(line.get("metrics", [])))


# ---------------------------------------------------------------- compare


class Report:
    def __init__(self):
        self.errors, self.notes = [], []

    def error(self, path, msg):
        self.errors.append(f"{path}: {msg}")

    def note(self, path, msg):
        self.notes.append(f"{path}: {msg}")


def check(ref, value, path, rep, rules):
    """Walks `value` against the layout node `ref`; `rules` is one section of lm-eval-omitted.json."""
    omitted, nullable, alternatives = rules["omitted"], rules["nullable"], rules["alternative_types"]
    t = jtype(value)
    if ref is None:
        return
    if ref["type"] == "null":
        if t != "null":
            rep.note(path, f"lm-eval wrote null here; ours is {t}")
        return
    if t == "null":
        if path in nullable:
            rep.note(path, f"null (lm-eval: {ref['type']}); {nullable[path]}")
        else:
            rep.error(path, f"null where lm-eval writes {ref['type']}")
        return
    if t not in ref["type"].split("|"):
        alt = alternatives.get(path)
        if alt and t in alt["types"]:
            rep.note(path, f"{t} (lm-eval: {ref['type']}); {alt['reason']}")
        else:
            rep.error(path, f"{t} where lm-eval writes {ref['type']}")
        return
    if t == "array":
        for i, x in enumerate(value):
            check(ref.get("items"), x, f"{path}[]", rep, rules)
        return
    if t != "object" or ref.get("opaque"):
        return
    if "each" in ref:
        if ref["each"] is not None:
            if not value:
                rep.error(path, "no entries")
            for k, x in value.items():
                check(ref["each"], x, f"{path}.<task>", rep, rules)
        return
    used = set()
    for k, sub in ref.get("keys", {}).items():
        sub_path = f"{path}.{k}" if path else k
        if k.startswith("<"):
            listed = value.get("metrics")
            if k == "<metric>" and isinstance(listed, list):
                matched = [m for m in value if m in listed]
            elif k == "<metric>":
                matched = [m for m in value if m not in ref["keys"]]
            elif k == "<metric>_stderr,<filter>":
                matched = [m for m in value if STDERR_KEY.match(m)]
            else:
                matched = [m for m in value if METRIC_KEY.match(m) and not STDERR_KEY.match(m)]
            if not matched:
                rep.error(sub_path, "MISSING (no key of this form)")
            for m in matched:
                used.add(m)
                check(sub, value[m], sub_path, rep, rules)
        elif k in value:
            used.add(k)
            check(sub, value[k], sub_path, rep, rules)
        elif sub_path in omitted:
            rep.note(sub_path, f"not written: {omitted[sub_path]}")
        else:
            rep.error(sub_path, "MISSING")
    extra = [k for k in value if k not in used]
    if extra:
        rep.note(path or "(top)", "extra keys, not lm-eval's: " + ", ".join(extra))


def dedupe(xs):
    return list(dict.fromkeys(xs))


def sanitize_task_name(name):  # lm_eval.utils.sanitize_task_name
    return re.sub(r"\W", "_", name)


def sha(s):  # lm_eval.utils.hash_string
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def compare(results_path, fixture_path, out=print):
    fixture = json.loads(Path(fixture_path).read_text())
    omitted = json.loads(OMITTED.read_text())
    rep = Report()
    results_path = Path(results_path)
    doc = json.loads(results_path.read_text(encoding="utf-8"))
    check(fixture["results"], doc, "", rep, omitted["results"])

    # Samples: found as lm-eval's tools find them, samples_<sanitised task>_<same stamp>.jsonl beside the results.
    stamp = results_path.name[len("results_"):-len(".json")]
    entries = list(doc.get("results", {}))
    n_lines = 0
    for entry in entries:
        path = results_path.parent / f"samples_{sanitize_task_name(entry)}_{stamp}.jsonl"
        declared = doc.get("sirius", {}).get("entries", {}).get(entry, {}).get("samples_file")
        if declared and declared != path.name:
            rep.error(f"sirius.entries.{entry}.samples_file", f"{declared} is not lm-eval's name for it, {path.name}")
        if not path.exists():
            rep.error(entry, f"no samples file {path.name}")
            continue
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        n_lines += len(lines)
        for i, line in enumerate(lines):
            r = Report()
            check(fixture["samples_line"], line, "", r, omitted["samples_line"])
            rep.errors += [f"{path.name} line {i + 1}: {e}" for e in r.errors]
            if i == 0:
                rep.notes += [f"{path.name} line 1: {n}" for n in r.notes]
        check_values(doc, entry, lines, path.name, rep)
    rep.notes, rep.errors = dedupe(rep.notes), dedupe(rep.errors)
    for n in rep.notes:
        out("note   " + n)
    for e in rep.errors:
        out("ERROR  " + e)
    try:  # lm-eval's own table of a results dict, where lm-eval is importable (the wrapper's virtualenv)
        from lm_eval.utils import make_table
    except ImportError:
        out("lm-eval not importable by this Python: its make_table was not tried (tools/check-lm-eval-layout.sh runs it)")
    else:
        try:
            out("lm-eval's make_table of it:\n" + make_table(doc))
        except Exception as e:  # noqa: BLE001 - any failure of lm-eval's reader is the finding
            rep.errors.append(f"lm-eval's make_table fails on it: {e!r}")
            out("ERROR  " + rep.errors[-1])
    out(f"{results_path.name}: {len(entries)} entries, {n_lines} sample lines; "
        f"{len(rep.errors)} error(s), {len(rep.notes)} note(s) against {Path(fixture_path).name} (lm-eval {fixture.get('lm_eval_version')})")
    return len(rep.errors) == 0


def check_values(doc, entry, lines, name, rep):
    """What lm-eval's numbers mean: mean and stderr of the lines, the hashes, the sample count."""
    res = doc["results"][entry]
    eff = doc.get("n-samples", {}).get(entry, {}).get("effective")
    if eff is not None and eff != len(lines):
        rep.error(name, f"{len(lines)} lines, n-samples effective {eff}")
    if res.get("sample_len") is not None and res["sample_len"] != len(lines):
        rep.error(name, f"{len(lines)} lines, sample_len {res['sample_len']}")
    for key, value in res.items():
        m = METRIC_KEY.match(key)
        if not m or STDERR_KEY.match(key):
            continue
        metric = m.group("metric")
        xs = [float(line[metric]) for line in lines if metric in line]
        if len(xs) != len(lines):
            rep.error(name, f"{len(lines) - len(xs)} lines lack the metric {metric}")
            continue
        mean = sum(xs) / len(xs) if xs else 0.0
        if not math.isclose(mean, value, rel_tol=1e-12, abs_tol=1e-12):
            rep.error(f"results.{entry}.{key}", f"{value}, but the lines' mean is {mean}")
        se = res.get(f"{metric}_stderr,{m.group('filter')}")
        if len(xs) > 1:  # lm_eval.api.metrics.mean_stderr
            expect = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs))
            if not isinstance(se, (int, float)) or not math.isclose(se, expect, rel_tol=1e-9, abs_tol=1e-12):
                rep.error(f"results.{entry}.{metric}_stderr", f"{se}, lm-eval's mean_stderr of the lines is {expect}")
        elif se != "N/A":
            rep.error(f"results.{entry}.{metric}_stderr", f"{se} for {len(xs)} sample(s); lm-eval writes N/A")
    hashes = ""
    for i, line in enumerate(lines):
        # lm_eval.evaluator: doc_hash, prompt_hash, target_hash
        want = {
            "doc_hash": sha(json.dumps(line["doc"], indent=2, ensure_ascii=False)),
            "prompt_hash": sha(line["arguments"]["gen_args_0"]["arg_0"]),
            "target_hash": sha(str(line["target"])),
        }
        for k, v in want.items():
            if line.get(k) != v:
                rep.error(f"{name} line {i + 1}", f"{k} {line.get(k)} is not lm-eval's {v}")
        hashes += line.get("doc_hash", "") + line.get("prompt_hash", "") + line.get("target_hash", "")
    task_hash = doc.get("task_hashes", {}).get(entry)
    if task_hash is not None and task_hash != sha(hashes):
        rep.error(f"task_hashes.{entry}", f"{task_hash} is not lm-eval's {sha(hashes)}")


# ---------------------------------------------------------------- record


def record(lm_eval, out_path):
    with tempfile.TemporaryDirectory(prefix="lm-eval-layout-") as tmp:
        tmp = Path(tmp)
        tasks = tmp / "tasks"
        tasks.mkdir()
        data = tasks / "data.jsonl"
        data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
        (tasks / "sirius_layout_tiny.yaml").write_text(TASK_YAML.format(data=data))
        output = tmp / "out"
        cmd = [lm_eval, "--model", "dummy", "--tasks", "sirius_layout_tiny", "--include_path", str(tasks),
               "--log_samples", "--output_path", str(output), "--limit", "3"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        print("$ " + " ".join(cmd), flush=True)
        p = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        print("\n".join((p.stdout + p.stderr).strip().splitlines()[-6:]))
        if p.returncode != 0:
            sys.exit(f"lm-eval failed (exit {p.returncode})")
        results = sorted(output.glob("*/results_*.json"))
        samples = sorted(output.glob("*/samples_*.jsonl"))
        if len(results) != 1 or len(samples) != 1:
            sys.exit(f"expected one results and one samples file under {output}, found {results} {samples}")
        doc = json.loads(results[0].read_text())
        line = json.loads(samples[0].read_text().splitlines()[0])
        fixture = {
            "generated_by": "tools/check-lm-eval-layout.py record",
            "lm_eval_version": doc.get("lm_eval_version"),
            "command": "lm_eval --model dummy --tasks sirius_layout_tiny (a local 4-line jsonl, generate_until, "
                       "exact_match) --log_samples --output_path DIR --limit 3",
            "results_file": f"<model>/{results[0].name.split('_')[0]}_<timestamp>.json",
            "samples_file": f"<model>/samples_<task>_<timestamp>.jsonl",
            "results": results_layout(doc),
            "samples_line": sample_layout(line),
        }
        Path(out_path).write_text(json.dumps(fixture, indent=2, sort_keys=True) + "\n")
        print(f"wrote {out_path} (lm-eval {fixture['lm_eval_version']})")
        print("self-check: lm-eval's own output against it")
        if not compare(results[0], out_path, out=lambda s: print("  " + s)):
            sys.exit("lm-eval's own output does not pass the checker")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--lm-eval", default="lm_eval", help="lm_eval executable (default: on PATH)")
    r.add_argument("--out", default=str(DEFAULT_FIXTURE))
    c = sub.add_parser("compare")
    c.add_argument("results")
    c.add_argument("--fixture", default=str(DEFAULT_FIXTURE))
    a = ap.parse_args()
    if a.cmd == "record":
        record(a.lm_eval, a.out)
    else:
        sys.exit(0 if compare(a.results, a.fixture) else 1)


if __name__ == "__main__":
    main()
