"""The training loop: mixture data -> K2 MoE -> MuonClip, with checkpoints, evals and metrics.

`train(spec)` runs it in this process; the job kind "train" is trainer/launch.py's `run_train`, which runs it here
or in torchrun / Ray Train workers.

Per optimizer step:
    lr = WSD(step)                                  warm-up, constant, cosine decay to min_lr_ratio * lr
    for each of grad_accum micro-batches:           fp32 on CPU, bf16 autocast on CUDA
        out = model(x[:, :-1], doc_ids, targets=x[:, 1:])   `window_loss`: the model's one loss convention
        (out.loss / grad_accum).backward()          loss = CE (+ MoE balance + MTP); CE in chunks of
                                                    loss_chunk_tokens (no full fp32 logits); out.lm_loss reported
    grad_norm = clip_grad_norm_(grad_clip)          NaN/Inf loss or grad norm: stop BEFORE the update
    optimizer.step()                                MuonClip: Muon/AdamW update, then QK-Clip (stats kept), then
                                                    its post-hook: router biases (trainer/balance.py), loads
                                                    summed over ranks
    metrics line; eval every eval_every; checkpoint every ckpt_every (and both at the end)
No torch.cuda.synchronize() per step unless sync_timing (exact per-step timing for benchmarks); the loss and
grad-norm reads are the step's only host syncs. Evaluation (`eval_loss`: summed CE over held-out windows, eval
mode) is the same function for the periodic eval and for `evaluate_checkpoint`.
Resuming restores model, optimizer, router biases (model buffers), sampler state, RNG and step; the schedule is
a pure function of the step. On CPU a run interrupted with `stop_at_step` and resumed reproduces the losses of an
uninterrupted run bit for bit (tests/trainer/test_loop.py).

Errors before any step: inconsistent model config, seq_len beyond max_position_embeddings, bad manifest or
shards (trainer/data.py), a checkpoint from another model config.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from corpus.events import Metrics, OnEvent, Progress
from corpus.log import progress
from corpus.shards import atomic_write_json
from corpus.spec import save_spec
from trainer import checkpoint, distributed
from trainer.balance import RouterBalancing
from trainer.data import DataError, MixtureData, load_manifest
from trainer.metrics import MetricsLog, clip_metrics, expert_imbalance, flops_per_token, mfu, peak_flops
from trainer.model import K2ForCausalLM, ModelOutput
from trainer.muonclip import MuonClip
from trainer.plots import plot_run
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


def window_loss(model: K2ForCausalLM, window: torch.Tensor, docs: torch.Tensor | None, device: torch.device,
                reduction: str = "mean") -> ModelOutput:
    """The model's output on a (B, T+1) window of the plan: inputs window[:, :-1], aligned targets window[:, 1:]
    (doc ids likewise). .lm_loss is the next-token CE (the reported and eval loss); in training mode .loss adds
    the MoE balance loss and the MTP loss (lambda / D * sum_k CE_k, depth k predicting window[:, k+1:])."""
    with _autocast(device):  # CE in fp32, in chunks of model.loss_chunk_tokens tokens when that is > 0
        return model(window[:, :-1], doc_ids=None if docs is None else docs[:, :-1], targets=window[:, 1:],
                     loss_reduction=reduction)


@torch.no_grad()
def eval_loss(model: K2ForCausalLM, batches, device: torch.device, doc_mask: bool) -> tuple[float, int]:
    """(summed next-token CE, scored tokens) over (tokens, doc ids) windows in eval mode; the model's mode is
    restored afterwards. doc_mask False: the doc ids are not passed (attention crosses documents)."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for toks, docs in batches:
        t = torch.from_numpy(toks).to(device)
        d = torch.from_numpy(docs).to(device) if doc_mask else None
        total += float(window_loss(model, t, d, device, reduction="sum").lm_loss)
        n += t.shape[0] * (t.shape[1] - 1)
    model.train(was_training)
    return total, n


def sync_step_end(spec: TrainSpec, device: torch.device) -> bool:
    """Whether a step ends with torch.cuda.synchronize(): only when exact per-step timing is asked for."""
    return spec.sync_timing and device.type == "cuda"


class Trainer:
    """One run: holds model, optimizer, data and the loop state; `fit()` trains to stop_at_step or steps."""

    def __init__(self, spec: TrainSpec, on_event: OnEvent | None = None):
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
        self.balancer = RouterBalancing.attach(self.optimizer, self.model)  # bias update after every step
        self.step, self.tokens_seen = 0, 0
        if self.resume_from is not None:
            meta = checkpoint.load(self.resume_from, self.model, self.optimizer)
            self.data.load_state_dict(meta["sampler"])
            self.step, self.tokens_seen = meta["step"], meta["tokens_seen"]
        self.flops_tok = flops_per_token(self.cfg, self.seq_len)
        self.peak = peak_flops(self.ctx.device)
        self.eval_set = self.data.eval_batches(spec.micro_batch_size, spec.eval_batches)
        self.losses: list[float] = []

    def _build(self) -> tuple[K2ForCausalLM, MuonClip]:
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
            out = window_loss(self.model, *self._local_batch(), self.ctx.device)
            (out.loss / spec.grad_accum).backward()
            losses.append(out.lm_loss.detach())
            if out.mtp_loss is not None:
                mtp_losses.append(out.mtp_loss.detach())
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.grad_clip or math.inf)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        loss_val, norm_val = self._reduce_loss(torch.stack(losses).mean()), float(norm)
        if not (math.isfinite(loss_val) and math.isfinite(norm_val)):
            self.optimizer.zero_grad(set_to_none=True)
            last = checkpoint.latest(self.out)
            raise TrainingError(f"step {step}: non-finite {'loss' if not math.isfinite(loss_val) else 'gradient'} "
                                f"(loss={loss_val}, grad_norm={norm_val}); stopped before the optimizer step, "
                                f"nothing saved for this step (last good checkpoint: {last})")
        self.optimizer.step()  # and its post-hook: the router-bias update
        self.optimizer.zero_grad(set_to_none=True)
        loads = self.balancer.last_loads
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

    def evaluate(self) -> dict[str, Any]:
        total, n = eval_loss(self.model, self.eval_set, self.ctx.device, self.spec.doc_mask)
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
                self.emit(Progress(self.step, stop, stage="train", extra={"loss": rec["loss"]}))
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
            self.emit(Metrics(rec["step"], {"eval_loss": rec["eval_loss"], "eval_tokens": rec["eval_tokens"]}))
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


def train(spec: TrainSpec, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Train in this process (or this torchrun/Ray worker)."""
    return Trainer(spec, on_event).fit()


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
    total, n = eval_loss(model, data.eval_batches(batch_size, max_batches), torch.device(device), doc_mask)
    if n == 0:
        raise DataError(f"{manifest}: eval split too small for one sample of seq_len+1={seq_len + 1} tokens")
    return {"checkpoint": str(ckpt), "step": meta["step"], "eval_loss": total / n, "eval_tokens": n,
            "perplexity": math.exp(min(total / n, 50.0)), "outputs": []}

