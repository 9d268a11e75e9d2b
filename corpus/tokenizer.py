"""Tokenizers for packing: any Hugging Face `tokenizers` tokenizer, by tokenizer.json path or model directory.

`load_tokenizer(None)` gives the embedded SmolLM2 tokenizer (corpus.embedded). The result carries what packing and
the trainer need for provenance and dtype choice: `eos_id`/`eos_token` (the document separator), `vocab_size`
(including added tokens), `name` (directory or file name) and `sha256` of the tokenizer.json.

Which token separates documents: an explicit `eos=` wins; otherwise `<|endoftext|>` when the vocabulary has it
(the pretraining document separator of GPT-2-style BPE vocabularies, SmolLM2 included; an instruct model's
tokenizer_config `eos_token` is its chat turn end, e.g. `<|im_end|>`, which is not what separates pretraining
documents), then the `eos_token` of a tokenizer_config.json next to the tokenizer.json, then common names.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from corpus.embedded import embedded_tokenizer_path
from corpus.shards import file_sha256

#: preferred document separators, in order, when neither `eos=` nor a tokenizer_config says otherwise
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|eos|>", "[SEP]")


@dataclass
class Tokenizer:
    """A loaded tokenizer plus the facts packing records. Picklable: it travels to worker processes."""
    tok: Any  # tokenizers.Tokenizer
    path: str
    name: str
    sha256: str
    eos_id: int
    eos_token: str
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, no special tokens added (EOS placement is the packer's job).

        `encode_batch_fast` skips character offsets, which packing never needs; the ids are identical.
        """
        encode = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)  # _fast: tokenizers >= 0.21
        return [e.ids for e in encode(list(texts), add_special_tokens=False)]

    def info(self) -> dict[str, Any]:
        """Provenance record written into pack indexes and mixture manifests."""
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "eos_id": self.eos_id,
                "eos_token": self.eos_token, "vocab_size": self.vocab_size}


def resolve_tokenizer_path(spec: str | os.PathLike | None) -> Path:
    """tokenizer.json for `spec`: None = embedded default, a directory = its tokenizer.json, else the file itself."""
    if spec is None:
        return embedded_tokenizer_path()
    p = Path(spec)
    if p.is_dir():
        if not (p / "tokenizer.json").exists():
            raise FileNotFoundError(f"tokenizer: {p} is a directory without tokenizer.json "
                                    "(only fast `tokenizers` files are supported)")
        return p / "tokenizer.json"
    if not p.exists():
        raise FileNotFoundError(f"tokenizer: {p}: no such file or directory")
    return p


def load_tokenizer(spec: str | os.PathLike | None = None, eos: str | None = None) -> Tokenizer:
    """Load a tokenizer (see module docstring for how the EOS token is chosen)."""
    from tokenizers import Tokenizer as HFTokenizer


    path = resolve_tokenizer_path(spec)
    try:
        tok = HFTokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
        raise ValueError(f"tokenizer: {path}: not a valid tokenizer.json ({e})") from None
    eos_token = _choose_eos(tok, path, eos)
    name = path.parent.name if path.name == "tokenizer.json" else path.stem
    return Tokenizer(tok=tok, path=str(path.resolve()), name=name, sha256=file_sha256(path),
                     eos_id=int(tok.token_to_id(eos_token)), eos_token=eos_token,
                     vocab_size=int(tok.get_vocab_size(with_added_tokens=True)))


def _choose_eos(tok: Any, path: Path, eos: str | None) -> str:
    if eos is not None:
        if tok.token_to_id(eos) is None:
            raise ValueError(f"tokenizer: {path}: eos token {eos!r} is not in the vocabulary")
        return eos
    for cand in _EOS_CANDIDATES[:1]:
        if tok.token_to_id(cand) is not None:
            return cand
    cfg = path.parent / "tokenizer_config.json"
    if cfg.exists():
        val = json.loads(cfg.read_text(encoding="utf-8")).get("eos_token")
        val = val.get("content") if isinstance(val, dict) else val
        if isinstance(val, str) and tok.token_to_id(val) is not None:
            return val
    for cand in _EOS_CANDIDATES[1:]:
        if tok.token_to_id(cand) is not None:
            return cand
    raise ValueError(f"tokenizer: {path}: cannot tell which token ends a document; pass eos_token explicitly")
