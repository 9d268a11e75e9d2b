"""K2 Figure 2 in miniature, on CPU: vanilla Muon lets max attention logits grow far past tau; MuonClip caps them.

Two runs of the real training loop on the same data, seed and config, differing only in `qk_clip` (on/off).
The corpus is the bundled samples (corpus/samples), packed with a 512-entry byte-level BPE trained on them, so
that the embedding and head stay small and a step takes ~0.2 s on one CPU thread.

What it took (recorded in EVIDENCE_CONFIG): logits grow with the size of the updates relative to the weights,
so the toy needs a large Muon lr (0.03) and no weight decay (decay shrinks W_q/W_k and hides the growth), with
2 heads, init std 0.06 and a small tau = 10. Probed on this machine, 200 steps, vanilla Muon: lr 0.01 / init
0.02 reached a max logit of ~6; lr 0.03 / init 0.02 ~65; lr 0.1 ~9000 (worse loss); lr 0.03 / init 0.06 ~110.
K2 used tau = 100 with vanilla logits beyond 1000 (9B activated); the ratio here is similar (~10x tau).

The honest caveat: the logged max logit of a step is measured in that step's forward, and QK-Clip (Algorithm 1)
rescales the weights AFTER the update using those pre-update logits. Measured (bench/bench_qkclip_overshoot.py,
this config, 200 steps, 107 of them clipping): the next step's logged max logit overshoots tau by 1.61x at most
(median 1.13x); the SAME batch forwarded again after update + clip peaks at 1.08x tau (median; max 1.19x). So
the overshoot is mostly batch-to-batch variation (a new batch with larger logits than the one the clip was
computed on), not the update: the capped curve hovers around tau (mean over the second half 1.16 tau) instead of
sitting exactly on it as in K2's plot (lr 2e-4, so tiny per-step growth, and huge batches with little variation).
The verdict therefore checks: vanilla max >= 5 tau; MuonClip mean over
the second half <= 1.5 tau and max <= 2.5 tau (and >= 4x below vanilla's max); final losses within 0.1 nats
(mean of the last 20 steps).

    k2forge train evidence --out runs/evidence     -> evidence.json, max_logits_muon_vs_muonclip.png

This module holds the corpus, the config and the verdict; the chain (corpus -> two trainings -> verdict) is the
pipeline definition pipeline/definitions/muonclip-evidence.yaml, run by pipeline.muonclip_evidence.run_evidence.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVIDENCE_CONFIG: dict[str, Any] = dict(
    preset="tiny", model={"vocab_size": 512, "num_attention_heads": 2, "initializer_range": 0.06}, steps=200,
    warmup_steps=10, decay_steps=0, lr=0.03, weight_decay=0.0, micro_batch_size=4, grad_accum=1, seq_len=64,
    qk_clip_tau=10.0, seed=0, cpu_threads=1, eval_batches=2, plots=True,
)
CORPUS_VOCAB = 512
VERDICT_RULES = {"vanilla_min_ratio": 5.0, "clip_mean_max_ratio": 1.5, "clip_max_ratio": 2.5,
                 "separation_min": 4.0, "loss_gap_max": 0.1, "loss_window": 20}


def train_tokenizer(path: Path, vocab: int = CORPUS_VOCAB) -> Path:
    """A byte-level BPE with `vocab` entries (incl. <|endoftext|>) trained on the bundled sample texts."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from corpus.samples import sample_files
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    texts = [json.loads(line)["text"] for f in sample_files() for line in f.read_text().splitlines() if line.strip()]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def build_sample_corpus(root: str | Path, seq_len: int = 64, weights: dict[str, float] | None = None,
                        vocab: int = CORPUS_VOCAB, total_tokens: int = 20000) -> Path:
    """Samples -> doc shards (2 per domain) -> pack with a trained BPE -> mix (one source per domain).

    Returns the manifest path. Uses the real corpus jobs, so the trainer reads exactly what `corpus mix` makes.
    """
    import yaml

    from corpus.mixture import MixSpec, run_mix
    from corpus.pack import PackSpec, run_pack
    from corpus.samples import sample_files
    from corpus.schema import normalize_doc, table_from_docs
    from corpus.shards import write_table
    root = Path(root)
    weights = weights or {"knowledge": 0.4, "math": 0.3, "code": 0.15, "web": 0.15}
    tok = train_tokenizer(root / "tok" / "tokenizer.json", vocab)
    for f in sample_files():
        domain = f.stem
        docs = [normalize_doc(json.loads(line), f"{f}:{i}", domain)
                for i, line in enumerate(f.read_text().splitlines()) if line.strip()]
        half = len(docs) // 2
        for k, part in enumerate((docs[:half], docs[half:])):
            write_table(root / "docs" / domain / f"{domain}-{k:05d}.parquet", table_from_docs(part))
        run_pack(PackSpec(inputs=[str(root / "docs" / domain)], output=str(root / "packed" / domain),
                          tokenizer=str(tok)))
    mixture = {"total_tokens": total_tokens, "seq_len": seq_len, "seed": 0, "eval_fraction": 0.05,
               "sources": [{"name": d, "paths": [d], "domain": d, "weight": w} for d, w in weights.items()]}
    (root / "mix.yaml").write_text(yaml.safe_dump(mixture))
    run_mix(MixSpec(mixture=str(root / "mix.yaml"), output=str(root / "mixture.json"),
                    packed=[str(root / "packed")]))
    return root / "mixture.json"


def verdict(muon: list[dict], clip: list[dict], tau: float, rules: dict[str, float] = VERDICT_RULES) -> dict:
    """The Figure-2 claims, checked on two metrics series (train rows of metrics.jsonl)."""
    w = int(rules["loss_window"])
    v_max = max(r["max_logit_max"] for r in muon)
    c_max = max(r["max_logit_max"] for r in clip)
    late = clip[len(clip) // 2:]
    c_late = sum(r["max_logit_max"] for r in late) / len(late)
    v_loss = sum(r["loss"] for r in muon[-w:]) / len(muon[-w:])
    c_loss = sum(r["loss"] for r in clip[-w:]) / len(clip[-w:])
    return {"tau": tau, "muon_max_logit": v_max, "muonclip_max_logit": c_max, "muonclip_second_half_mean": c_late,
            "muon_over_tau": v_max / tau, "muonclip_over_tau": c_max / tau,
            "muon_final_loss": v_loss, "muonclip_final_loss": c_loss, "loss_gap": c_loss - v_loss,
            "muonclip_steps_with_clipping": sum(1 for r in clip if r["heads_clipped_total"] > 0),
            "muon_grows_past_tau": v_max >= rules["vanilla_min_ratio"] * tau,
            "muonclip_capped": (c_late <= rules["clip_mean_max_ratio"] * tau and c_max <= rules["clip_max_ratio"] * tau
                                and v_max >= rules["separation_min"] * c_max),
            "loss_comparable": abs(c_loss - v_loss) <= rules["loss_gap_max"], "rules": rules}
