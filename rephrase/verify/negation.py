"""Negation flips between aligned source and rewrite sentences.

Sentences are grouped by the embedding alignment (each source sentence joins its best rewrite sentence and vice
versa, so a rewrite that merges two source sentences forms one group). Within a group, the parity of negation
cues must agree: "is not soluble" vs "is soluble" differ, "never lost" vs "did not lose" agree. Parity rather
than counts, because a double negative may be resolved when rewording. Known blind spot: negation expressed by a
prefix ("insoluble") or an antonym ("absent") is not a cue, so such rewordings read as flips; the Q&A idiom
"No, ..." answering a question is discounted (a question and its answer are one unit, see text.merge_questions).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

CUES = ("not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "nowhere", "without", "cannot",
        "lacks", "lacked", "lack", "lacking", "unable", "fail", "fails", "failed", "absence")
#: contrastive negation: "by phytoplankton rather than by land plants" = "not by land plants"
PHRASE_CUES = ("rather than", "instead of")
_CUE_RE = re.compile(r"\b(?:%s)\b|n['\u2019]t\b" % "|".join(CUES + PHRASE_CUES), re.IGNORECASE)
#: phrases that contain a cue word without negating the claim
_NOT_NEGATION = re.compile(r"\b(?:no longer than|not only|no doubt|nothing but|no fewer than|no less than|"
                           r"not least|without doubt|fail-safe)\b|\bnot\b(?=[^.;]{0,40}\buntil\b)|"
                           r"(?:^|\?)\s*no\s*[,.!:;]", re.IGNORECASE)


def negation_count(sentence: str) -> int:
    return len(_CUE_RE.findall(_NOT_NEGATION.sub(" ", sentence)))


def align_groups(sim: np.ndarray, min_sim: float) -> list[tuple[list[int], list[int]]]:
    """Connected groups (source indices, rewrite indices) from best-match edges with similarity >= min_sim."""
    n_src, n_rw = sim.shape
    parent = list(range(n_src + n_rw))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(i: int, j: int) -> None:
        if sim[i, j] >= min_sim:
            parent[find(i)] = find(n_src + j)

    if n_src and n_rw:
        for i in range(n_src):
            union(i, int(sim[i].argmax()))
        for j in range(n_rw):
            union(int(sim[:, j].argmax()), j)
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for k in range(n_src + n_rw):
        g = groups.setdefault(find(k), ([], []))
        (g[0] if k < n_src else g[1]).append(k if k < n_src else k - n_src)
    return [g for g in groups.values() if g[0] and g[1]]


@dataclass
class Flip:
    source: str
    rewrite: str


def find_flips(src_sents: list[str], rw_sents: list[str], sim: np.ndarray, min_sim: float) -> list[Flip]:
    """Aligned groups whose negation parity differs."""
    flips = []
    for s_idx, r_idx in align_groups(sim, min_sim):
        s_text = " ".join(src_sents[i] for i in s_idx)
        r_text = " ".join(rw_sents[j] for j in r_idx)
        if sum(map(negation_count, (src_sents[i] for i in s_idx))) % 2 != \
                sum(map(negation_count, (rw_sents[j] for j in r_idx))) % 2:
            flips.append(Flip(s_text, r_text))
    return flips
