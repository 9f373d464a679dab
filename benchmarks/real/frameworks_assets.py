"""What TorchTitan's debug configs read from ``./tests/assets`` (its wheel ships neither): a word-level
tokenizer made with ``tokenizers`` and a few lines of c4-like text. ``python frameworks_assets.py DIR``."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers


def write_assets(root: Path) -> None:
    words = [f"w{i}" for i in range(500)]
    vocab = {"<|begin_of_text|>": 0, "<|end_of_text|>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    (root / "tests/assets/tokenizer").mkdir(parents=True, exist_ok=True)
    tok.save(str(root / "tests/assets/tokenizer/tokenizer.json"))
    (root / "tests/assets/tokenizer/tokenizer_config.json").write_text(
        json.dumps({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}))
    (root / "tests/assets/c4_test").mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    lines = [" ".join(rng.choice(words) for _ in range(3000)) for _ in range(64)]
    (root / "tests/assets/c4_test/data.json").write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))


if __name__ == "__main__":
    write_assets(Path(sys.argv[1]))
