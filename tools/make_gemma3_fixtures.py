#!/usr/bin/env python3
"""References for the real Gemma-3-270M (Q4_K_M GGUF, fetched by `tools/fetch-model.sh gemma3-270m`):

  Tests/EngineTests/Fixtures/gemma3_greedy.json         transformers' greedy continuations (fp32 weights
                                                        dequantised from the GGUF by transformers/gguf-py;
                                                        one full forward + argmax per step), first-step top-5
  Tests/EngineTests/Fixtures/tokenizer/gemma3_expected.json
                                                        transformers' tokenizer built from the same GGUF,
                                                        on the shared tokenizer corpus (corpus.json)
  Tests/EngineTests/Fixtures/tokenizer/gemma3_chat_expected.json
                                                        apply_chat_template renderings (and their ids) of the
                                                        shared conversations with Gemma 3's published chat
                                                        template (below: the 270M base GGUF carries none)

One prompt is longer than the model's 512-position sliding window, so the window is exercised on the real
model in prefill and in decoding. Nothing of the model is committed: only ids and a few logits.

Usage (a venv with `pip install torch==2.13.0 transformers gguf accelerate sentencepiece`):
    python tools/make_gemma3_fixtures.py [--model ~/.cache/sirius/gemma3-270m/gemma-3-270m-q4_k_m.gguf]
"""
import argparse
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers_reference import greedy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests", "EngineTests", "Fixtures")
DEFAULT_MODEL = os.path.expanduser("~/.cache/sirius/gemma3-270m/gemma-3-270m-q4_k_m.gguf")
NEW_TOKENS = 32

LONG_STORY = " ".join(
    "Day %d of the voyage: the wind came from the %s, the crew counted %d barrels of water, and the "
    "navigator wrote that the coast of %s was still %d leagues away." % (
        d, ["north", "east", "south", "west"][d % 4], 40 - d, ["Lisbon", "Cadiz", "Genoa", "Tunis", "Malta"][d % 5],
        90 - 3 * d)
    for d in range(1, 21))

PROMPTS = [
    "The capital of France is",
    "Q: A farmer has 17 sheep and buys 5 more. How many sheep does he have?\nA:",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Photosynthesis is the process by which",
    "Translate to German: The weather is nice today.\nGerman:",
    LONG_STORY + "\nQuestion: how many barrels of water did the crew count on day 7?\nAnswer:",
]


# The text part of the chat template published with the Gemma 3 instruction-tuned models (images omitted).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = \"\" -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


def chat_fixture(tok):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_tokenizer_fixtures import CONVERSATIONS
    out = []
    for name, msgs in CONVERSATIONS:
        for gen in (True, False):
            text = tok.apply_chat_template(msgs, chat_template=GEMMA3_CHAT_TEMPLATE, tokenize=False, add_generation_prompt=gen)
            out.append({"name": name, "messages": msgs, "add_generation_prompt": gen, "text": text,
                        "ids": tok(text, add_special_tokens=False)["input_ids"]})
    dump(os.path.join(FIX, "tokenizer", "gemma3_chat_expected.json"), {"gemma3": out})
    print("chat: %d renderings" % len(out), file=sys.stderr)


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--chat-only", action="store_true", help="only the chat renderings")
    args = ap.parse_args()
    d, f = os.path.split(os.path.abspath(os.path.expanduser(args.model)))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    chat_fixture(tok)
    if args.chat_only:
        return
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager").eval()
    assert model.config.sliding_window == 512

    cases = []
    for p in PROMPTS:
        ids = tok(p)["input_ids"]          # with <bos>, as the model's tokenizer adds it
        out, first, margin = greedy(model, ids, NEW_TOKENS)
        top = torch.topk(first, 5)
        cases.append({"prompt": p, "chat": False, "rendered": p, "prompt_ids": ids, "output_ids": out,
                      "first_logits_top5_ids": top.indices.tolist(),
                      "first_logits_top5_values": [float(v) for v in top.values], "min_argmax_margin": margin})
        print("%4d prompt tokens, margin %.4f: %r" % (len(ids), margin, tok.decode(out)[:60]), file=sys.stderr)
    assert max(len(c["prompt_ids"]) for c in cases) > 512 + 8
    dump(os.path.join(FIX, "gemma3_greedy.json"),
         {"reference": "transformers %s, torch %s, %s dequantised to fp32, eager attention" % (
             transformers.__version__, torch.__version__, f),
          "new_tokens": NEW_TOKENS, "cases": cases})

    with open(os.path.join(FIX, "tokenizer", "corpus.json"), encoding="utf-8") as fh:
        strings = json.load(fh)
    entries = []
    for s in strings:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        entries.append({"text": s, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                        "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    with_special = [{"text": s, "ids": tok(s)["input_ids"]} for s in ["Hello world", "", " x", "<bos>hi", "<start_of_turn>user\nhi<end_of_turn>"]]
    dump(os.path.join(FIX, "tokenizer", "gemma3_expected.json"),
         {"reference": "transformers %s GemmaTokenizer built from %s" % (transformers.__version__, f),
          "entries": entries, "with_special": with_special})
    print("tokenizer: %d corpus strings" % len(entries), file=sys.stderr)


if __name__ == "__main__":
    main()
