"""RephraseVsRepeatSpec: the one definition of the K2 Table 1 probe (CLI flags or YAML, like every job spec).

A size fills what is not given: entities, seeds, training steps' scale and the model. `rephrase` and `train`
hold overrides of RephraseSpec and TrainSpec fields (validated against those specs when this spec is), so the
probe's stages take exactly the knobs the stand-alone jobs take.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from corpus.fields import PathOut, field_roles
from corpus.spec import Spec
from rephrase.engines import EngineSpec, LlamaCppEngineSpec
from rephrase.verify import VerifierSpec

#: arm name -> (what it trains on, documents per person, planned epochs); see evidence.arms for the gap rule
ARM_NAMES = ("raw_x10", "reph_1x10", "reph_10x1", "control_10x1", "control_1x10")
DEFAULT_ARMS = ["raw_x10", "reph_1x10", "reph_10x1", "control_10x1"]

#: the CPU sizes' model: preset tiny widened to hidden 128 (measured on the default world at 4 passes, one seed:
#: hidden 64 stayed near chance in both raw and control arms; hidden 128 reached QA exact 10% raw vs 29% control,
#: at ~1.3x the step time)
CPU_MODEL: dict[str, Any] = {"vocab_size": 1024, "hidden_size": 128, "intermediate_size": 384,
                             "moe_intermediate_size": 96, "q_lora_rank": 64, "kv_lora_rank": 64}
CPU_TRAIN: dict[str, Any] = {"preset": "tiny", "model": CPU_MODEL, "micro_batch_size": 2, "seq_len": 64,
                             "lr": 0.01, "cpu_threads": 1, "device": "cpu"}
#: per size: people, training seeds, V, passes, and the trainer's knobs (TrainSpec fields)
SIZES: dict[str, dict[str, Any]] = {
    # the default-stage test and a first look: seconds of training
    "tiny": {"entities": 4, "seeds": [0], "variants": 4, "passes": 1.0, "train": CPU_TRAIN},
    # the slow test: under 5 minutes on 2 CPU cores with the embedded model
    "small": {"entities": 4, "seeds": [0, 1, 2], "variants": 10, "passes": 1.0, "train": CPU_TRAIN},
    # the CPU default: 4 passes, since at K2's one pass (10 exposures per person) the CPU model extracts nothing
    # in any arm (measured: QA at chance in raw and control alike); 16 people, since rephrasing 10 variants of 32
    # passages on llama.cpp alone took ~27 min on 2 cores (16: ~13 min, plus ~8 min for 4 arms x 3 seeds)
    "default": {"entities": 16, "seeds": [0, 1, 2], "variants": 10, "passes": 4.0, "train": CPU_TRAIN},
    # for GPUs with a real engine (vLLM / an OpenAI-compatible server); not measured here (no GPU)
    "large": {"entities": 4000, "seeds": [0, 1, 2], "variants": 10, "passes": 1.0,
              "train": {"preset": "small", "model": {"vocab_size": 4096}, "micro_batch_size": 32, "seq_len": 512,
                        "lr": 3e-3, "device": "auto"},
              "rephrase": {"attempts": 3, "max_new_tokens": 256, "concurrency": 256}},
}
#: the trainer's knobs every size starts from (TrainSpec fields); the size's and then the user's `train` win
TRAIN_BASE: dict[str, Any] = {"weight_decay": 0.0, "warmup_steps": 5, "grad_accum": 1, "plots": False,
                              "eval_batches": 1, "verify_checksums": True}
#: the rephrase stage's knobs (RephraseSpec fields): short passages, so short chunks and short generations; one
#: attempt on CPU (a second sample of the 135M model rarely passes where the first failed, at twice the time)
REPHRASE_BASE: dict[str, Any] = {"attempts": 1, "max_new_tokens": 128, "chunk_target_tokens": 96,
                                 "chunk_max_tokens": 160, "temperature": 0.7, "concurrency": 32}


class RephraseVsRepeatSpec(Spec):
    output: PathOut = Field(..., description="output directory: world, rephrasings, arms, runs, report")
    size: Literal["tiny", "small", "default", "large"] = Field(
        "default", description="tiny (seconds), small (< 5 min on 2 CPU cores), default (< 30 min on 2 cores), "
                               "large (GPUs, a real engine)")
    entities: int | None = Field(None, ge=4, description="fictional people (none = the size's)")
    seeds: list[int] | None = Field(None, min_length=1, description="training seeds per arm (none = the size's)")
    seed: int = Field(0, description="seed of the world (people, passages, control paraphrases) and rephrasing")
    variants: int | None = Field(None, ge=2, le=20, description="rephrasings asked per passage (V); also the "
                                 "repeat arms' epochs per pass (K2 Table 1: 10; none = the size's)")
    passes: float | None = Field(None, gt=0, description="budget multiplier: bio budget = passes x V x raw tokens "
                                 "(1 = K2's rows: raw x10 / 10 rephrasings x1; 4 = raw x40 / 10 rephrasings x4; "
                                 "none = the size's)")
    qa_train_fraction: float = Field(0.5, gt=0, lt=1, description="share of people whose Q/A pairs are training "
                                     "data (they teach the format); QA accuracy is measured on the others")
    qa_epochs: float = Field(10.0, gt=0, description="passes over the Q/A training pairs (the same in every arm)")
    arms: list[str] = Field(default_factory=lambda: list(DEFAULT_ARMS),
                            description=f"arms to train, of {', '.join(ARM_NAMES)}")
    engine: EngineSpec = Field(default_factory=LlamaCppEngineSpec,
                               description="rephrasing engine (default: the embedded SmolLM2-135M on llama.cpp; "
                                           "vllm or openai with base_url on GPUs)")
    verifier: VerifierSpec = Field(default_factory=VerifierSpec, description="fidelity verifier of the rephrasings")
    rephrase: dict[str, Any] = Field(default_factory=dict, description="RephraseSpec field overrides (attempts, "
                                     "temperature, styles, on_chunk_failure, ...)")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainSpec field overrides (preset, model, "
                                  "lr, micro_batch_size, seq_len, device, ...)")
    vocab_size: int | None = Field(None, ge=300, description="BPE vocabulary trained on the training texts (none "
                                   "= the model's vocab_size)")
    answer_tokens: int = Field(24, ge=1, description="greedy tokens generated per QA answer")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ARM_NAMES]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"arms {v}: expected distinct names of {', '.join(ARM_NAMES)}")
        return v

    @field_validator("rephrase", "train")
    @classmethod
    def _no_marked_overrides(cls, v: dict[str, Any], info) -> dict[str, Any]:
        # a path, secret or model source must be a typed field (the service confines and checks those by their
        # markers, corpus.fields); in an untyped override dict it would slip past, so none may be overridden here
        from rephrase.spec import RephraseSpec
        from trainer.spec import TrainSpec
        target = RephraseSpec if info.field_name == "rephrase" else TrainSpec
        marked = sorted(k for k in v if field_roles(target).get(k))
        if marked:
            raise ValueError(f"{', '.join(marked)}: a path, secret or model field of {target.__name__} cannot be "
                             f"overridden here (the probe sets its own folders; the engine is `engine`)")
        return v

    @model_validator(mode="after")
    def _stage_overrides(self) -> "RephraseVsRepeatSpec":
        # build the stage specs now, so a bad override fails here and names its field, not an hour into a run
        self.rephrase_spec("in", "out")
        self.train_spec("manifest.json", "out", seed=0, steps=10)
        return self

    @property
    def n_variants(self) -> int:
        return self.variants or SIZES[self.size]["variants"]

    @property
    def n_passes(self) -> float:
        return self.passes or SIZES[self.size]["passes"]

    @property
    def people(self) -> int:
        return self.entities or SIZES[self.size]["entities"]

    @property
    def train_seeds(self) -> list[int]:
        return list(self.seeds or SIZES[self.size]["seeds"])

    def train_fields(self) -> dict[str, Any]:
        size = SIZES[self.size]["train"]
        model = {**size.get("model", {}), **self.train.get("model", {})}
        return {**TRAIN_BASE, **size, **self.train, "model": model}

    def rephrase_spec(self, inputs: str, output: str):
        from rephrase.spec import RephraseSpec
        from corpus.spec import parse_spec
        data = {**REPHRASE_BASE, **SIZES[self.size].get("rephrase", {}), **self.rephrase, "inputs": [inputs],
                "output": output, "variants": self.n_variants, "seed": self.seed,
                "engine": self.engine.model_dump(), "verifier": self.verifier.model_dump()}
        return parse_spec(RephraseSpec, data, "rephrase (RephraseSpec overrides)")

    def train_spec(self, manifest: str, output: str, seed: int, steps: int):
        from trainer.spec import TrainSpec
        from corpus.spec import parse_spec
        fields = self.train_fields()
        warm = min(fields.get("warmup_steps") or 0, max(0, steps - 1))
        data = {**fields, "warmup_steps": warm, "manifest": manifest, "output": output, "seed": seed,
                "steps": steps, "resume": False}
        return parse_spec(TrainSpec, data, "train (TrainSpec overrides)")
