"""The torchtitan backend: `run_train` with backend torchtitan checks the inputs like any run, then launches
torchtitan.train under torchrun in the backend's own venv with trainer/titan.py's config of the spec. That
torchtitan's ConfigManager accepts the config, builds a model with our exact parameter count and yields our
plan's rows is checked by bench/bench_titan_backend.py inside that venv (and below, when it exists)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainer.test_data import VOCAB, build_corpus
from trainer import launch
from trainer.data import DataError
from trainer.launch import run_train
from trainer.spec import TrainSpec

ROOT = Path(__file__).resolve().parents[2]
TITAN_PYTHON = ROOT / ".venv-torchtitan" / "bin" / "python"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("titan"))


def _spec(manifest, out, **kw):
    base = dict(manifest=str(manifest), output=str(out), model={"vocab_size": VOCAB}, steps=4, warmup_steps=1,
                micro_batch_size=2, seq_len=32, backend="torchtitan", backend_python=sys.executable,
                executor={"kind": "torchrun", "workers": 2})
    return TrainSpec(**{**base, **kw})


def test_launch_runs_torchtitan_train_with_the_spec(manifest, tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, env, cwd):  # the engine itself needs its venv (and a GPU to train): capture the launch
        seen.update(cmd=cmd, spec=json.loads(Path(env["K2FORGE_TITAN_SPEC"]).read_text()), env=env)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    res = run_train(_spec(manifest, "rel-out"))
    assert seen["cmd"][:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert seen["cmd"][5:] == ["-m", "torchtitan.train", "--module", "trainer.titan", "--config", "k2forge"]
    assert seen["spec"]["output"] == str(tmp_path / "rel-out") and Path(seen["spec"]["manifest"]).is_absolute()
    assert str(ROOT) in seen["env"]["PYTHONPATH"].split(os.pathsep)
    assert res["backend"] == "torchtitan" and not Path(seen["env"]["K2FORGE_TITAN_SPEC"]).exists()


def test_bad_input_fails_before_launching(manifest, tmp_path):
    with pytest.raises(DataError, match="steps=400 .* lower steps"):
        run_train(_spec(manifest, tmp_path / "x", steps=400))
    with pytest.raises(FileNotFoundError, match="backend_python /nope/python does not exist"):
        run_train(_spec(manifest, tmp_path / "x", backend_python="/nope/python"))
    with pytest.raises(ValueError, match="executor kind ray is not supported"):
        run_train(_spec(manifest, tmp_path / "x", executor={"kind": "ray", "workers": 2}))


@pytest.mark.slow
@pytest.mark.skipif(not TITAN_PYTHON.exists(), reason="needs .venv-torchtitan (bench/bench_titan_backend.py)")
def test_torchtitan_accepts_the_config_and_builds_our_model(manifest, tmp_path):
    from bench.bench_titan_backend import check
    spec = json.loads(_spec(manifest, tmp_path / "o").model_dump_json())
    res = check(TITAN_PYTHON, spec, data=True)
    assert res["parsed"]["type"] == "Trainer.Config" and res["parsed"]["steps"] == 3  # CLI override applied
    assert res["params_equal"] and res["rank1_rows_equal_plan"], res
