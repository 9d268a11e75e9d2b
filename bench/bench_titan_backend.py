"""torchtitan backend on CPU: torchtitan's own ConfigManager accepts the config trainer/titan.py generates, the
model torchtitan builds from it has exactly our parameter count, and its dataloader yields our plan's rows.

torchtitan lives in its own virtualenv `.venv-torchtitan` (never the project's .venv): this script creates it
(torchtitan beside torch==2.13.0 CPU, plus triton, which torchtitan 0.3 imports unconditionally) unless it exists,
builds the bundled sample corpus with the project's own jobs, then runs the checks inside that venv for the
`tiny` preset (with data) and for `kimi-k2` / `deepseek-v3` (shapes only, on the meta device).
What only a GPU shows: that `k2forge train run --backend torchtitan` trains (FlexAttention, grouped GEMMs,
FSDP2/EP in torchtitan). Writes bench/results/titan_backend.json.

    .venv/bin/python bench/bench_titan_backend.py [--venv .venv-torchtitan]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHECK = r'''
import json, os, sys, torch
from torchtitan.config import ConfigManager
import torchtitan
out = {"torchtitan": getattr(torchtitan, "__version__", None), "torch": torch.__version__}
cfg = ConfigManager().parse_args(["--module", "trainer.titan", "--config", "k2forge", "--training.steps", "3"])
out["parsed"] = {"type": type(cfg).__qualname__, "steps": cfg.training.steps, "seq_len": cfg.training.seq_len,
                 "global_batch_size": cfg.training.global_batch_size, "warmup_steps": cfg.lr_scheduler.warmup_steps,
                 "decay_ratio": cfg.lr_scheduler.decay_ratio, "dataloader": type(cfg.dataloader).__qualname__}
with torch.device("meta"):
    model = cfg.model_spec.model.build()
out["titan_params"] = sum(p.numel() for p in model.parameters())
if os.environ.get("CHECK_DATA"):
    from trainer.data import MixtureData
    seq = cfg.training.seq_len
    dl = cfg.dataloader.build(dp_world_size=2, dp_rank=1, tokenizer=None, seq_len=seq, local_batch_size=4)
    inp, lab = next(iter(dl))
    toks, _ = MixtureData.open(json.loads(open(os.environ["K2FORGE_TITAN_SPEC"]).read())["manifest"], seq).next_batch(8)
    out["rank1_rows_equal_plan"] = bool(torch.equal(inp["input"], torch.from_numpy(toks[4:, :-1]))
                                        and torch.equal(lab, torch.from_numpy(toks[4:, 1:])))
print("RESULT " + json.dumps(out))
'''


def ensure_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torchtitan", "torch==2.13.0", "triton"],
                       check=True)
    return python


def check(python: Path, spec: dict, data: bool) -> dict:
    from trainer.params import count_params
    from trainer.spec import TrainSpec
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    env = {**os.environ, "K2FORGE_TITAN_SPEC": path, "PYTHONPATH": str(ROOT), **({"CHECK_DATA": "1"} if data else {})}
    try:
        proc = subprocess.run([str(python), "-c", CHECK], env=env, capture_output=True, text=True, cwd=str(ROOT))
    finally:
        os.unlink(path)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"torchtitan check failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    ours = count_params(TrainSpec.model_validate(spec).build_model_config())
    res["k2forge_params"] = ours.total + ours.mtp
    res["params_equal"] = res["titan_params"] == res["k2forge_params"]
    return res


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv-torchtitan"))
    args = ap.parse_args(argv)
    python = ensure_venv(Path(args.venv))
    from trainer.evidence import build_sample_corpus
    work = Path(tempfile.mkdtemp(prefix="bench-titan-"))
    manifest = build_sample_corpus(work / "corpus", seq_len=64, total_tokens=64 * 64)
    base = {"manifest": str(manifest), "output": str(work / "out"), "seq_len": 64, "steps": 8, "warmup_steps": 1,
            "micro_batch_size": 4, "grad_accum": 2, "executor": {"kind": "torchrun", "workers": 2}}
    runs = {"tiny": check(python, {**base, "preset": "tiny", "model": {"vocab_size": 512}}, data=True)}
    for name in ("kimi-k2", "deepseek-v3"):
        runs[name] = check(python, {**base, "preset": name}, data=False)
    out = ROOT / "bench" / "results" / "titan_backend.json"
    out.write_text(json.dumps(runs, indent=2) + "\n")
    print(json.dumps(runs, indent=2))
    return runs


if __name__ == "__main__":
    main()
