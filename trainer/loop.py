"""The training loop (job kind "train"): mixture data -> K2 MoE -> MuonClip, with checkpoints, evals and metrics.

Per optimizer step:
    lr = WSD(step)                                  warm-up, constant, cosine decay to min_lr_ratio * lr
    for each of grad_accum micro-batches:           fp32 on CPU, bf16 autocast on CUDA
        loss = CE(model(x[:, :-1], doc_ids), x[:, 1:]) (+ MoE balance loss); (loss / grad_accum).backward()
                                                    CE in chunks of loss_chunk_tokens (no full fp32 logits)
    grad_norm = clip_grad_norm_(grad_clip)          NaN/Inf loss or grad norm: stop BEFORE the update
    optimizer.step()                                MuonClip: Muon/AdamW update, then QK-Clip (stats kept)
    model.update_router_biases()                    aux-loss-free balancing, loads summed over ranks
    metrics line; eval every eval_every; checkpoint every ckpt_every (and both at the end)
No torch.cuda.synchronize() per step unless sync_timing (exact per-step timing for benchmarks); the loss and
grad-norm reads are the step's only host syncs.
Resuming restores model, optimizer, router biases (model buffers), sampler state, RNG and step; the schedule is
a pure function of the step. On CPU a run interrupted with `stop_at_step` and resumed reproduces the losses of an
uninterrupted run bit for bit (tests/trainer/test_loop.py).

Errors before any step: inconsistent model config, seq_len beyond max_position_embeddings, bad manifest or
shards (trainer/data.py), a checkpoint from another model config.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch

from corpus.log import progress
from corpus.shards import atomic_write_json
from corpus.spec import save_spec
from trainer import checkpoint, distributed
from trainer.data import DataError, MixtureData, load_manifest
from trainer.metrics import MetricsLog, clip_metrics, expert_imbalance, flops_per_token, mfu, peak_flops
from trainer.spec import TrainSpec

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss or gradients); the message names the step."""


def lr_at(step: int, spec: TrainSpec) -> float:
    """WSD learning rate for 1-based `step`: linear warm-up, constant, cosine to min_lr_ratio * lr."""
    warm, decay = spec.warmup, spec.decay
    decay_start = spec.steps - decay
    if warm and step <= warm:
        return spec.lr * step / warm
    if step <= decay_start or decay == 0:
        return spec.lr
    frac = (step - decay_start) / decay
    return spec.lr * (spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def global_batch(spec: TrainSpec, world_size: int) -> int:
    """Samples per optimizer step over all ranks."""
    return spec.micro_batch_size * spec.grad_accum * world_size


def preflight(spec: TrainSpec, rank: int = 0, world_size: int | None = None):
    """Everything that can be wrong with the inputs, checked before a model is built: (config, data, seq_len)."""
    cfg = spec.build_model_config()
    manifest = load_manifest(spec.manifest)
    seq_len = spec.seq_len or int(manifest["seq_len"])
    if seq_len > cfg.max_position_embeddings:
        raise ValueError(f"seq_len={seq_len} exceeds the model's max_position_embeddings="
                         f"{cfg.max_position_embeddings} (preset {spec.preset!r})")
    # one rank hashing every shard is enough; the others see the same files
    data = MixtureData.open(spec.manifest, seq_len, seed=spec.seed, vocab_size=cfg.vocab_size,
                            verify_checksums=spec.verify_checksums and rank == 0, repeat=spec.past_budget == "repeat")
    world = world_size or (spec.executor.workers if spec.executor.kind != "local" else 1)
    need = spec.steps * global_batch(spec, world)
    if not data.total_samples:
        raise DataError(f"{spec.manifest}: the manifest allots {sum(data.allotted)} tokens, not one sample of "
                        f"seq_len={seq_len}")
    if need > data.total_samples:
        msg = (f"steps={spec.steps} x {global_batch(spec, world)} samples per step = {need} samples of seq_len "
               f"{seq_len}, but the manifest {spec.manifest} allots {data.total_samples} "
               f"({need / data.total_samples:.2f} passes)")
        if spec.past_budget == "error":
            raise DataError(f"{msg}; lower steps to {data.total_samples // global_batch(spec, world)}, raise the "
                            "mixture's total_tokens, or set past_budget: repeat")
        if rank == 0:
            logger.warning("%s: past_budget=repeat, so the plan is repeated (epochs exceed the manifest's)", msg)
    return cfg, data, seq_len


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()  # fp32 on CPU


def lm_loss(model, toks: torch.Tensor, docs: torch.Tensor | None, device: torch.device,
            reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(next-token CE over x[:, 1:], extra training loss or None, MTP term or None) for a (B, T+1) batch.

    extra = MoE balance loss + MTP loss (lambda / D * sum_k CE_k, depth k predicting x[:, k+1:]): what
    training adds to the CE; the CE alone is the reported (and eval) loss.
    """
    inp, tgt = toks[:, :-1], toks[:, 1:]
    with _autocast(device):  # CE in fp32, in chunks of model.loss_chunk_tokens tokens when that is > 0
        out = model(inp, doc_ids=None if docs is None else docs[:, :-1], targets=tgt, loss_reduction=reduction)
    parts = [x for x in (out.aux_loss, out.mtp_loss) if x is not None]
    return out.lm_loss, (sum(parts) if parts else None), out.mtp_loss


def sync_step_end(spec: TrainSpec, device: torch.device) -> bool:
    """Whether a step ends with torch.cuda.synchronize(): only when exact per-step timing is asked for."""
    return spec.sync_timing and device.type == "cuda"


class Trainer:
    """One run: holds model, optimizer, data and the loop state; `fit()` trains to stop_at_step or steps."""

    def __init__(self, spec: TrainSpec, on_event: Callable[[dict], None] | None = None):
        self.spec, self.emit = spec, on_event or (lambda e: None)
        if spec.cpu_threads:
            torch.set_num_threads(spec.cpu_threads)
        self.ctx = distributed.context(spec.device)
        self.cfg, self.data, self.seq_len = preflight(spec, self.ctx.rank, self.ctx.world_size)
        self.out = Path(spec.output)
        self.resume_from = checkpoint.latest(self.out) if spec.resume else None
        if not spec.resume and checkpoint.latest(self.out) is not None:  # new steps would mix with old ones
            raise ValueError(f"{self.out} already holds checkpoints (latest {checkpoint.latest(self.out).name}); "
                             "set resume to continue that run, or choose another output directory")
        if self.resume_from is not None:  # refuse another preset/config before building anything
            checkpoint.check_compatible(self.resume_from, checkpoint.read_meta(self.resume_from),
                                        self.cfg.to_dict(), spec.preset)
        self.model, self.optimizer = self._build()
        self.step, self.tokens_seen = 0, 0
        if self.resume_from is not None:
            meta = checkpoint.load(self.resume_from, self.model, self.optimizer)
            self.data.load_state_dict(meta["sampler"])
            self.step, self.tokens_seen = meta["step"], meta["tokens_seen"]
        self.flops_tok = flops_per_token(self.cfg, self.seq_len)
        self.peak = peak_flops(self.ctx.device)
        self.eval_set = self.data.eval_batches(spec.micro_batch_size, spec.eval_batches)
        self.losses: list[float] = []

    def _build(self):
        from trainer.model import K2ForCausalLM
        from trainer.muonclip import MuonClip
        torch.manual_seed(self.spec.seed)
        if self.ctx.distributed:  # meta -> shard -> materialise each rank's shard -> seeded init of it alone
            with torch.device("meta"):
                model = K2ForCausalLM(self.cfg, init_weights=False)
        else:
            model = K2ForCausalLM(self.cfg, seed=self.spec.seed).to(self.ctx.device)
        model.set_activation_checkpointing(self.spec.activation_checkpointing)
        model.set_loss_chunking(self.spec.loss_chunk_tokens)
        if self.spec.compile:
            for layer in model.blocks():
                layer.compile()
        if self.ctx.distributed:
            distributed.shard(model, distributed.mixed_precision(self.spec.fsdp_mixed_precision, self.ctx.device))
            model.to_empty(device=self.ctx.device)
            model.init_weights(self.spec.seed)  # the weights of the unsharded init, at any world size
        model.train()
        opt = MuonClip.from_model(model, lr=self.spec.lr, weight_decay=self.spec.weight_decay,
                                  momentum=self.spec.momentum, nesterov=self.spec.nesterov,
                                  qk_clip=self.spec.qk_clip, qk_clip_tau=self.spec.qk_clip_tau)
        return model, opt

    # ------------------------------------------------------------------------------------------------ steps
    def _local_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        mb, r = self.spec.micro_batch_size, self.ctx.rank
        # every rank advances the same plan over the global batch but reads only its own rows
        toks, docs = self.data.next_batch(mb * self.ctx.world_size, slice(r * mb, (r + 1) * mb))
        dev = self.ctx.device
        t = torch.from_numpy(toks).to(dev)
        d = torch.from_numpy(docs).to(dev) if self.spec.doc_mask else None
        return t, d

    def train_step(self) -> dict[str, Any]:
        spec, step = self.spec, self.step + 1
        t0 = time.perf_counter()
        lr = lr_at(step, spec)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        losses, mtp_losses = [], []
        for _ in range(spec.grad_accum):
            loss, aux, mtp = lm_loss(self.model, *self._local_batch(), self.ctx.device)
            ((loss if aux is None else loss + aux) / spec.grad_accum).backward()
            losses.append(loss.detach())
            if mtp is not None:
                mtp_losses.append(mtp.detach())
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.grad_clip or math.inf)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        loss_val, norm_val = self._reduce_loss(torch.stack(losses).mean()), float(norm)
        if not (math.isfinite(loss_val) and math.isfinite(norm_val)):
            self.optimizer.zero_grad(set_to_none=True)
            last = checkpoint.latest(self.out)
            raise TrainingError(f"step {step}: non-finite {'loss' if not math.isfinite(loss_val) else 'gradient'} "
                                f"(loss={loss_val}, grad_norm={norm_val}); stopped before the optimizer step, "
                                f"nothing saved for this step (last good checkpoint: {last})")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loads = self.model.update_router_biases()
        if sync_step_end(spec, self.ctx.device):  # only for exact per-step timing: it serialises the GPU
            torch.cuda.synchronize(self.ctx.device)
        dt = time.perf_counter() - t0
        tokens = spec.micro_batch_size * spec.grad_accum * self.ctx.world_size * self.seq_len
        self.step, self.tokens_seen = step, self.tokens_seen + tokens
        self.losses.append(loss_val)
        extra = {"mtp_loss": self._reduce_loss(torch.stack(mtp_losses).mean())} if mtp_losses else {}
        return {"type": "train", "step": step, "loss": loss_val, "lr": lr, "grad_norm": norm_val,
                "tokens": self.tokens_seen, "plan_fraction": self.data.consumed_samples / self.data.total_samples,
                "tokens_per_s": tokens / dt, "step_time_s": dt,
                "mfu": mfu(self.flops_tok, tokens / dt, self.peak),
                **clip_metrics(self.optimizer.last_clip_stats), "expert_imbalance": expert_imbalance(loads),
                **extra}

    def _reduce_loss(self, loss: torch.Tensor) -> float:
        if self.ctx.distributed:  # mean over ranks (gloo has no AVG); NaN on any rank reaches every rank
            loss = loss.clone()
            torch.distributed.all_reduce(loss)
            loss = loss / self.ctx.world_size
        return float(loss)

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        self.model.eval()
        total, n = 0.0, 0
        for toks, docs in self.eval_set:
            t = torch.from_numpy(toks).to(self.ctx.device)
            d = torch.from_numpy(docs).to(self.ctx.device) if self.spec.doc_mask else None
            loss, _, _ = lm_loss(self.model, t, d, self.ctx.device, reduction="sum")
            total, n = total + float(loss), n + t.shape[0] * (t.shape[1] - 1)
        self.model.train()
        return {"type": "eval", "step": self.step, "eval_loss": total / n if n else None, "eval_tokens": n,
                "data": self.data.consumption()}

    def save(self) -> Path | None:
        meta = {"model_config": self.cfg.to_dict(), "preset": self.spec.preset, "sampler": self.data.state_dict(),
                "tokens_seen": self.tokens_seen, "manifest": str(Path(self.spec.manifest).resolve()),
                "tokenizer": self.data.tokenizer, "seq_len": self.seq_len, "doc_mask": self.spec.doc_mask}
        return checkpoint.save(self.out, self.step, self.model, self.optimizer, meta, self.spec.keep_last,
                               self.ctx.rank)

    # ------------------------------------------------------------------------------------------------ run
    def fit(self) -> dict[str, Any]:
        spec, main = self.spec, self.ctx.is_main
        stop = spec.stop_at_step or spec.steps
        if main:
            save_spec(spec, self.out / "spec.yaml", "train")
        metrics = MetricsLog(self.out / "metrics.jsonl", resume_step=self.step, enabled=main)
        start, last_eval, saved_at = self.step, None, None
        if main:
            logger.info("training %s from step %d to %d (of %d) on %s x%d", self.out, start, stop, spec.steps,
                        self.ctx.device, self.ctx.world_size)
        bar = progress(total=stop, initial=start, desc="train") if main else None
        try:
            while self.step < stop:
                rec = self.train_step()
                metrics.write(rec)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}")
                self.emit({"type": "progress", "done": self.step, "total": stop, "loss": rec["loss"]})
                if spec.eval_every and self.step % spec.eval_every == 0 and self.eval_set:
                    last_eval = self._eval(metrics)
                if spec.ckpt_every and self.step % spec.ckpt_every == 0:
                    saved_at = self._save()
            if self.eval_set and (last_eval is None or last_eval["step"] != self.step):
                last_eval = self._eval(metrics)
            if saved_at != self.step and self.step > start:
                self._save()
        finally:
            metrics.close()
            if bar is not None:
                bar.close()
        return self._finish(start, last_eval)

    def _eval(self, metrics: MetricsLog) -> dict[str, Any]:
        rec = self.evaluate()
        metrics.write(rec)
        if self.ctx.is_main:
            msg = f"step {rec['step']}: eval loss {rec['eval_loss']:.4f} on {rec['eval_tokens']} held-out tokens"
            logger.info("%s", msg)
            self.emit({"type": "log", "level": "info", "message": msg})
        return rec

    def _save(self) -> int:
        path = self.save()
        if self.ctx.is_main:
            logger.info("step %d: checkpoint %s", self.step, path)
        return self.step

    def _finish(self, start: int, last_eval: dict | None) -> dict[str, Any]:
        ckpt = checkpoint.latest(self.out)
        ranks = self.out / "ranks"
        if self.ctx.distributed:  # every rank reports, so agreement can be checked
            ranks.mkdir(parents=True, exist_ok=True)
            atomic_write_json(ranks / f"rank-{self.ctx.rank}.json",
                              {"rank": self.ctx.rank, "losses": self.losses,
                               "weight_checksum": distributed.weight_checksum(self.model)})
        plots = []
        if self.ctx.is_main and self.spec.plots:
            from trainer.plots import plot_run
            plots = [str(p) for p in plot_run(self.out / "metrics.jsonl", self.out,
                                              self.spec.qk_clip_tau)]
        summary = {"outputs": [str(p) for p in (ckpt, self.out / "metrics.jsonl", self.out / "spec.yaml")
                               if p is not None] + plots,
                   "step": self.step, "steps": self.spec.steps, "resumed_from": start or None,
                   "finished": self.step >= self.spec.steps, "tokens_seen": self.tokens_seen,
                   "final_loss": self.losses[-1] if self.losses else None,
                   "eval_loss": last_eval["eval_loss"] if last_eval else None,
                   "world_size": self.ctx.world_size, "device": str(self.ctx.device), "checkpoint": str(ckpt),
                   "data": self.data.consumption()}
        if self.ctx.is_main:
            atomic_write_json(self.out / "summary.json", summary)
        return summary


def train(spec: TrainSpec, on_event: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train in this process (or this torchrun/Ray worker)."""
    return Trainer(spec, on_event).fit()


def run_train(spec: TrainSpec, on_event: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Job-kind entry point: train locally, or launch the same loop with torchrun or Ray Train."""
    kind = spec.executor.kind
    if spec.backend == "torchtitan":
        preflight(spec)  # the same checks (manifest, budget, config) before handing over to the engine
        return distributed.launch_torchtitan(spec)
    if kind == "torchrun":
        preflight(spec)  # bad input fails here, once, not in every worker
        return distributed.launch_torchrun(spec)
    if kind == "ray":
        preflight(spec)
        return distributed.launch_ray(spec)
    return train(spec, on_event)


def evaluate_checkpoint(ckpt: str | Path, manifest: str, batch_size: int = 4, max_batches: int = 8,
                        seq_len: int | None = None, device: str = "cpu",
                        doc_mask: bool | None = None) -> dict[str, Any]:
    """Held-out loss of a checkpoint on a manifest's eval split (the manifest decides which documents)."""
    model, meta = checkpoint.load_model(ckpt, device)
    seq_len = seq_len or meta.get("seq_len") or int(load_manifest(manifest)["seq_len"])
    doc_mask = meta.get("doc_mask", True) if doc_mask is None else doc_mask
    if seq_len > model.config.max_position_embeddings:
        raise DataError(f"seq_len={seq_len} exceeds max_position_embeddings={model.config.max_position_embeddings}")
    data = MixtureData.open(manifest, seq_len, vocab_size=model.config.vocab_size)
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for toks, docs in data.eval_batches(batch_size, max_batches):
            t = torch.from_numpy(toks).to(device)
            d = torch.from_numpy(docs).to(device) if doc_mask else None
            loss, _, _ = lm_loss(model, t, d, torch.device(device), reduction="sum")
            total, n = total + float(loss), n + t.shape[0] * (t.shape[1] - 1)
    if n == 0:
        raise DataError(f"{manifest}: eval split too small for one sample of seq_len+1={seq_len + 1} tokens")
    return {"checkpoint": str(ckpt), "step": meta["step"], "eval_loss": total / n, "eval_tokens": n,
            "perplexity": math.exp(min(total / n, 50.0)), "outputs": []}


if __name__ == "__main__":  # pragma: no cover - `python -m trainer.loop spec.json`, like a torchrun worker
    import sys
    print(json.dumps(train(TrainSpec.model_validate_json(Path(sys.argv[1]).read_text())), indent=2))
