"""Evaluating one trained run: QA accuracy on the eval people's held-out questions, and held-out paraphrase loss.

- `qa_exact` (wording "heldout"; `qa_exact_seen` for the "seen" wording, see evidence.world): greedy decoding
  after the eval prompt ("Q: <question>\\nA:") up to a newline or EOS; the answer matches when it equals the
  attribute value (case and surrounding spaces/periods ignored). The K2 row.
- `qa_ranked`: the attribute value scores highest (summed log-probability of " value\\n" after the prompt) among
  every value of that attribute in the world: a finer signal for models too small to emit whole answers.
- `heldout_loss`: mean next-token cross-entropy over the held-out paraphrases (wordings no training text uses), and
  `heldout_value_loss`: the same over the attribute values' tokens only (what knowing the fact lowers).
Batches are left-padded with a separate document id, so padding is invisible to attention (doc masking) and the
rotary embedding is relative: a padded row computes what the bare prompt computes.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from evidence.world import ATTRIBUTES, Person, heldout_paraphrase

BATCH = 32


def normalize(answer: str) -> str:
    return " ".join(answer.strip().strip(".").split()).casefold()


def _batch(seqs: list[list[int]], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (B, T) ids and doc ids (0 = padding, 1 = the sequence), on `device`."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    docs = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, width - len(s):] = torch.tensor(s, dtype=torch.long)
        docs[b, width - len(s):] = 1
    return ids.to(device), docs.to(device)


@torch.no_grad()
def _logprobs(model, seqs: list[list[int]], pad: int) -> list[torch.Tensor]:
    """Per sequence: log p(token t | tokens < t) for t = 1..len-1 (a (len-1,) tensor)."""
    out: list[torch.Tensor] = []
    for k in range(0, len(seqs), BATCH):
        chunk = seqs[k:k + BATCH]
        ids, docs = _batch(chunk, pad, _device(model))
        logits = model(ids, doc_ids=docs).logits.float()
        lp = F.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0].cpu()
        for b, s in enumerate(chunk):
            out.append(lp[b, ids.shape[1] - len(s):])
    return out


@torch.no_grad()
def greedy(model, prompts: list[list[int]], max_new: int, stop_ids: set[int], pad: int) -> list[list[int]]:
    """Greedy continuations of each prompt, stopped at a stop id (not included) or after max_new tokens."""
    outs: list[list[int]] = []
    for k in range(0, len(prompts), BATCH):
        seqs = [list(p) for p in prompts[k:k + BATCH]]
        gen: list[list[int]] = [[] for _ in seqs]
        live = list(range(len(seqs)))
        for _ in range(max_new):
            if not live:
                break
            ids, docs = _batch([seqs[i] for i in live], pad, _device(model))
            nxt = model(ids, doc_ids=docs).logits[:, -1].argmax(-1).tolist()
            still = []
            for i, t in zip(live, nxt):
                if t in stop_ids:
                    continue
                seqs[i].append(t)
                gen[i].append(t)
                still.append(i)
            live = still
        outs.extend(gen)
    return outs


def _device(model) -> torch.device:
    return next(model.parameters()).device


def evaluate_run(ckpt: str, tokenizer, people: list[Person], questions: list[dict[str, Any]], seed: int,
                 answer_tokens: int, device: str = "cpu") -> dict[str, Any]:
    """Every metric of one run, plus the per-question answers (written beside the run as eval.json)."""
    from trainer.checkpoint import load_model
    model, _ = load_model(ckpt, device)
    model.eval()
    pad = tokenizer.eos_id
    newline = {i for i in range(tokenizer.tok.get_vocab_size()) if "\n" in tokenizer.tok.decode([i])}
    prompts = [tokenizer.encode(q["prompt"]) for q in questions]
    answers = greedy(model, prompts, answer_tokens, newline | {tokenizer.eos_id}, pad)
    rows = []
    for q, a in zip(questions, answers):
        text = tokenizer.tok.decode(a)
        rows.append({**q, "output": text, "exact": normalize(text) == normalize(q["answer"])})
    _rank(model, tokenizer, people, rows, prompts, pad)
    loss, value_loss, n_tok, n_val = _heldout(model, tokenizer, people, seed, pad)
    res: dict[str, Any] = {"heldout_loss": loss, "heldout_value_loss": value_loss, "heldout_tokens": n_tok,
                           "heldout_value_tokens": n_val}
    for wording, suffix in (("heldout", ""), ("seen", "_seen")):
        sel = [r for r in rows if r["wording"] == wording]
        res[f"qa_exact{suffix}"] = _mean([r["exact"] for r in sel])
        res[f"qa_ranked{suffix}"] = _mean([r["ranked"] for r in sel])
        res[f"by_attribute{suffix}"] = {a: {"exact": _mean([r["exact"] for r in sel if r["attribute"] == a]),
                                            "ranked": _mean([r["ranked"] for r in sel if r["attribute"] == a])}
                                        for a in ATTRIBUTES}
    return {**res, "questions": len(rows), "answers": rows}


def _rank(model, tokenizer, people, rows, prompts, pad) -> None:
    """Marks each row `ranked`: its true value has the highest log-probability among the attribute's values."""
    values = {a: sorted({p.attrs[a] for p in people}) for a in ATTRIBUTES}
    for row, prompt in zip(rows, prompts):
        cands = values[row["attribute"]]
        seqs = [prompt + tokenizer.encode(f" {v}\n") for v in cands]
        scores = [float(lp[len(prompt) - 1:].sum()) for lp in _logprobs(model, seqs, pad)]
        best = cands[max(range(len(cands)), key=scores.__getitem__)]
        row["ranked"] = best == row["answer"]
        row["ranked_pick"] = best


def _heldout(model, tokenizer, people, seed, pad) -> tuple[float, float, int, int]:
    """(mean CE over all tokens, mean CE over the attribute values' tokens, token counts) on held-out paraphrases."""
    texts = [heldout_paraphrase(p, seed) for p in people]
    encs = [tokenizer.tok.encode(t, add_special_tokens=False) for t in texts]
    lps = _logprobs(model, [e.ids for e in encs], pad)
    total = value = 0.0
    n = nv = 0
    for p, t, e, lp in zip(people, texts, encs, lps):
        spans = [(t.index(v), t.index(v) + len(v)) for v in p.attrs.values()]
        for j, (s, end) in enumerate(e.offsets[1:]):     # token j+1 is predicted by lp[j]
            total -= float(lp[j])
            n += 1
            if any(s < b and end > a for a, b in spans):  # the token overlaps a value (" Tams" starts at the space)
                value -= float(lp[j])
                nv += 1
    return total / max(n, 1), value / max(nv, 1), n, nv


def _mean(xs: list[bool]) -> float:
    return sum(map(float, xs)) / len(xs) if xs else math.nan
