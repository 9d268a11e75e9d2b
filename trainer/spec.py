"""TrainSpec: the one pydantic spec of a training run (CLI YAML/flags, REST API, Ray), job kind "train".

Defaults follow the K2 recipe where it makes sense at small scale (SPEC §2): WSD schedule with 300 warm-up steps
(at most 10% of a shorter run), constant lr, cosine decay to 0.1x; weight decay 0.1; MuonClip with tau 100.
Model shape = a preset from trainer/config.py plus `model` overrides (field names of ModelConfig);
`model_config()` validates them.
The schedule always spans `steps`; `stop_at_step` only ends this invocation early (pre-emptible jobs, tests),
so a resumed run continues the very same schedule.
The data budget is the manifest's: `steps` x global batch samples must fit in what it allots (past_budget=error,
refused before training) unless past_budget=repeat (further passes over the same plan, with a warning).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from corpus.fields import PathIn, PathOut
from corpus.spec import ExecutorSpec, Spec
from trainer.config import preset


class TrainExecutorSpec(ExecutorSpec):
    kind: Literal["local", "torchrun", "ray"] = Field(
        "local", description="local = this process (torchrun sets WORLD_SIZE for FSDP2 data parallel); "
        "torchrun = spawn `workers` local processes; ray = Ray Train TorchTrainer with `workers` workers")
    workers: int = Field(1, ge=1, description="torchrun: local processes; ray: Ray Train workers")
    use_gpu: bool = Field(False, description="ray: one GPU per worker")


class TrainSpec(Spec):
    manifest: PathIn = Field(..., description="mixture manifest JSON from `k2forge corpus mix`")
    output: PathOut = Field(..., description="run directory: checkpoints, metrics.jsonl, plots, spec")
    preset: str = Field("tiny", description="model preset (trainer/config.py PRESETS)")
    model: dict[str, Any] = Field(default_factory=dict, description="ModelConfig field overrides, e.g. "
                                  '{"num_attention_heads": 2}')
    seq_len: int | None = Field(None, ge=2, description="tokens per sample; none = the manifest's seq_len")
    micro_batch_size: int = Field(4, ge=1, description="sequences per forward pass (per rank)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    steps: int = Field(100, ge=1, description="optimizer steps of the whole schedule")
    stop_at_step: int | None = Field(None, ge=1, description="end this invocation after this step "
                                     "(the schedule still spans `steps`; resume continues it)")
    lr: float = Field(2e-4, gt=0, description="peak learning rate")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="floor of the cosine decay, as a fraction of lr")
    warmup_steps: int | None = Field(None, ge=0, description="linear warm-up steps, < steps; none = "
                                     "min(300, steps // 10)")
    decay_steps: int | None = Field(None, ge=0, description="cosine decay steps at the end; none = 20% of steps")
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0, description="max global grad norm; 0 = off")
    momentum: float = Field(0.95, ge=0, lt=1, description="Muon momentum")
    nesterov: bool = Field(False, description="Nesterov momentum in Muon")
    qk_clip: bool = Field(True, description="QK-Clip on (MuonClip) or off (vanilla Muon)")
    qk_clip_tau: float = Field(100.0, gt=0, description="max attention logit tau")
    seed: int = Field(0, description="seed of model init and data sampling")
    doc_mask: bool = Field(True, description="attend only within the same document")
    past_budget: Literal["error", "repeat"] = Field(
        "error", description="steps x global batch beyond the manifest's samples: error = refuse before training; "
        "repeat = warn and make further passes over the manifest's plan")
    eval_every: int = Field(0, ge=0, description="eval every N steps (and at the end); 0 = only at the end")
    eval_batches: int = Field(4, ge=1, description="held-out batches per eval")
    ckpt_every: int = Field(0, ge=0, description="checkpoint every N steps (and at the end); 0 = only at the end")
    keep_last: int = Field(2, ge=1, description="checkpoints kept")
    resume: bool = Field(True, description="continue from the latest checkpoint in `output` when there is one")
    verify_checksums: bool = Field(True, description="sha256 of every shard against the manifest before training")
    device: Literal["auto", "cpu", "cuda"] = Field("auto")
    cpu_threads: int | None = Field(None, ge=1, description="torch intra-op CPU threads; none = torch's default "
                                    "(1 is much faster on a CPU shared with other jobs: no OpenMP spinning)")
    compile: bool = Field(False, description="torch.compile the model (GPU)")
    activation_checkpointing: bool = Field(False, description="recompute each block in backward instead of "
                                           "keeping its activations (less memory, ~1 extra forward)")
    loss_chunk_tokens: int = Field(4096, ge=0, description="cross-entropy (LM and MTP) over chunks of this "
                                   "many tokens, each chunk's logits recomputed in backward, so the fp32 "
                                   "(tokens, vocab) logits are never held at once; 0 = one CE over all logits")
    fsdp_mixed_precision: Literal["auto", "bf16", "off"] = Field(
        "auto", description="FSDP2 MixedPrecisionPolicy: bf16 = parameters all-gathered and used in bf16, "
        "gradients reduce-scattered in fp32 onto the fp32 sharded (master) weights that Muon updates; "
        "off = fp32 throughout; auto = bf16 on CUDA, off on CPU")
    sync_timing: bool = Field(False, description="synchronize the GPU at the end of every step so step_time_s, "
                              "tokens_per_s and mfu are exact per step (benchmarks); off = the loop never waits "
                              "for the GPU beyond reading the loss and grad norm (host-side step times)")
    plots: bool = Field(True, description="write PNG plots next to the checkpoints at the end")
    executor: TrainExecutorSpec = Field(default_factory=TrainExecutorSpec)
    backend: Literal["k2forge", "torchtitan"] = Field(
        "k2forge", description="k2forge = this project's loop; torchtitan = write torchtitan's config "
        "(trainer/titan.py: our model, data plan and schedule) and launch torchtitan.train with torchrun")
    backend_python: PathIn | None = Field(None, description="python of the backend's own virtualenv; none = "
                                       ".venv-torchtitan/bin/python in the checkout (bench/bench_titan_backend.py)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.stop_at_step is not None and self.stop_at_step > self.steps:
            raise ValueError(f"stop_at_step={self.stop_at_step} exceeds steps={self.steps}")
        if self.decay_steps is not None and self.decay_steps > self.steps:
            raise ValueError(f"decay_steps={self.decay_steps} exceeds steps={self.steps}")
        if self.warmup_steps is not None and self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be < steps={self.steps}: the WSD schedule "
                             "would have no constant or decay phase (lower warmup_steps or raise steps)")
        return self

    @property
    def warmup(self) -> int:
        """Warm-up steps of the WSD schedule."""
        return self.warmup_steps if self.warmup_steps is not None else min(300, self.steps // 10)

    @property
    def decay(self) -> int:
        """Cosine decay steps at the end of the WSD schedule."""
        return self.decay_steps if self.decay_steps is not None else round(0.2 * self.steps)

    def build_model_config(self):
        """The validated ModelConfig (ConfigError names the field when dims are inconsistent)."""
        return preset(self.preset, **self.model)
