#!/usr/bin/env python3
"""Independent references for the engine's numerical tests (Tests/EngineTests/Fixtures/dequant/).

1. dequant.json: random raw block bytes for every weight type the engine computes with (F32, F16, BF16,
   Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, Q5_0) and gguf-py's dequantisation of them (`gguf.quants.dequantize`), as
   float32 bit patterns (so NaN/inf survive JSON and the comparison can be bit-exact).
   The fp16 scale fields of quantised blocks are replaced by small finite halves; the F16/F32/BF16 data
   deliberately includes subnormals, infinities and NaNs.
2. rope_llama3.json: transformers' Llama-3 rope initialisation (`ROPE_INIT_FUNCTIONS["llama3"]`) for a few
   configurations, plus the unscaled inverse frequencies.

Usage: /root/.cache/sirius/venv/bin/python tools/make_dequant_fixtures.py [--out Tests/EngineTests/Fixtures/dequant]
(needs numpy, gguf >= 0.19, torch, transformers). Deterministic (fixed seed).
"""
import argparse
import json
import os

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q
from gguf import quants

SEED = 20260530
# (type, number of blocks) — kept small so the fixture stays well under 300 KB.
TYPES = [
    (Q.F32, 96), (Q.F16, 160), (Q.BF16, 160),
    (Q.Q4_0, 12), (Q.Q4_1, 12), (Q.Q8_0, 12),
    (Q.Q4_K, 4), (Q.Q6_K, 4),
    (Q.Q5_0, 12),   # added last, so the earlier types keep their random bytes
]
# Byte offsets of the fp16 scale fields inside one block.
SCALE_FIELDS = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q8_0: [0], Q.Q4_K: [0, 2], Q.Q6_K: [208], Q.Q5_0: [0]}


def small_half(rng):
    """A random finite half with magnitude in [2^-12, 2^-1] (normal range), random sign."""
    exp = rng.integers(15 - 12, 15)          # biased exponent 3..14
    man = rng.integers(0, 1024)
    sign = rng.integers(0, 2)
    return np.uint16((sign << 15) | (exp << 10) | man)


def special_halves():
    """Edge cases of IEEE half: zeros, subnormals, max, inf, nan (quiet and signalling payloads)."""
    return [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0200, 0x0400, 0x7BFF, 0xFBFF,
            0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00, 0x3C00, 0xBC00, 0x3555, 0x0010]


def make_blocks(rng, qtype, nblocks):
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, block_bytes), dtype=np.uint8)
    if qtype == Q.F32:
        vals = rng.standard_normal(nblocks).astype(np.float32) * np.float32(3)
        specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-44, 3.4e38, 1.0], dtype=np.float32)
        vals[:len(specials)] = specials
        raw = vals.view(np.uint8).reshape(nblocks, 4)
    elif qtype == Q.F16:
        h = raw.view(np.uint16).reshape(-1).copy()
        sp = np.array(special_halves(), dtype=np.uint16)
        h[:len(sp)] = sp
        raw = h.view(np.uint8).reshape(nblocks, 2)
    elif qtype == Q.BF16:
        h = raw.view(np.uint16).reshape(-1).copy()
        sp = np.array([0x0000, 0x8000, 0x0001, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x3F80, 0x007F], dtype=np.uint16)
        h[:len(sp)] = sp
        raw = h.view(np.uint8).reshape(nblocks, 2)
    else:
        for b in range(nblocks):
            for off in SCALE_FIELDS[qtype]:
                raw[b, off:off + 2] = np.frombuffer(small_half(rng).tobytes(), dtype=np.uint8)
    return raw


def dequant_fixture(rng):
    cases = []
    for qtype, nblocks in TYPES:
        raw = make_blocks(rng, qtype, nblocks)
        out = quants.dequantize(raw.reshape(-1) if qtype in (Q.F32, Q.F16, Q.BF16) else raw, qtype)
        out = np.asarray(out, dtype=np.float32).reshape(-1)
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        assert out.size == nblocks * block_elems, (qtype, out.size)
        cases.append({
            "type": qtype.name,
            "ggml_type": int(qtype.value),
            "block_elements": int(block_elems),
            "block_bytes": int(block_bytes),
            "blocks": nblocks,
            "bytes_hex": raw.reshape(-1).tobytes().hex(),
            "values_bits": [int(v) for v in out.view(np.uint32)],
        })
    return {
        "generator": "tools/make_dequant_fixtures.py (gguf-py gguf.quants.dequantize)",
        "seed": SEED,
        "cases": cases,
    }


def rope_fixture():
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    configs = [
        # Llama-3.1-8B: head_dim 128, theta 5e5, factor 8.
        dict(head_dim=128, heads=32, theta=500000.0, factor=8.0, low=1.0, high=4.0, original=8192),
        # Llama-3.2-1B/3B: factor 32.
        dict(head_dim=64, heads=32, theta=500000.0, factor=32.0, low=1.0, high=4.0, original=8192),
        # Unusual parameters, so every branch is exercised with a different threshold.
        dict(head_dim=96, heads=8, theta=10000.0, factor=4.0, low=2.0, high=8.0, original=1024),
    ]
    cases = []
    for c in configs:
        rope = {"rope_type": "llama3", "factor": c["factor"], "low_freq_factor": c["low"],
                "high_freq_factor": c["high"], "original_max_position_embeddings": c["original"],
                "rope_theta": c["theta"]}
        cfg = LlamaConfig(hidden_size=c["head_dim"] * c["heads"], num_attention_heads=c["heads"],
                          head_dim=c["head_dim"], rope_theta=c["theta"], max_position_embeddings=131072,
                          rope_scaling=rope)
        inv, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, torch.device("cpu"))
        base = 1.0 / (c["theta"] ** (torch.arange(0, c["head_dim"], 2, dtype=torch.int64).float() / c["head_dim"]))
        cases.append({**c, "inv_freq": [float(x) for x in inv.to(torch.float32)],
                      "unscaled_inv_freq": [float(x) for x in base.to(torch.float32)]})
    import transformers
    return {"generator": f"tools/make_dequant_fixtures.py (transformers {transformers.__version__} ROPE_INIT_FUNCTIONS['llama3'])",
            "cases": cases}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Tests", "EngineTests", "Fixtures", "dequant"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    with open(os.path.join(args.out, "dequant.json"), "w") as f:
        json.dump(dequant_fixture(rng), f, separators=(",", ":"))
    with open(os.path.join(args.out, "rope_llama3.json"), "w") as f:
        json.dump(rope_fixture(), f, indent=1)
    for n in ("dequant.json", "rope_llama3.json"):
        print(n, os.path.getsize(os.path.join(args.out, n)), "bytes")


if __name__ == "__main__":
    main()
