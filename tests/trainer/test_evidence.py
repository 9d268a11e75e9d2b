"""K2 Figure 2 in miniature (trainer.evidence, run as the pipeline of pipeline.muonclip_evidence): on CPU,
vanilla Muon lets max attention logits grow far past a small tau while MuonClip keeps them around tau, at the same
loss. The full run is slow (two 200-step trainings); the verdict rules are also checked on hand-made series so a
wrong rule fails fast, and a 3-step run checks the command's outputs."""
import json

import pytest

from pipeline.muonclip_evidence import run_evidence
from trainer.evidence import EVIDENCE_CONFIG, verdict


def _series(max_logits, loss=4.0):
    return [{"step": i + 1, "loss": loss, "max_logit_max": m, "heads_clipped_total": int(m > 10)}
            for i, m in enumerate(max_logits)]


def test_verdict_rules():
    grow, capped = _series([1, 20, 60, 100]), _series([1, 9, 11, 10.5])
    v = verdict(grow, capped, 10.0)
    assert v["muon_grows_past_tau"] and v["muonclip_capped"] and v["loss_comparable"]
    assert not verdict(capped, capped, 10.0)["muon_grows_past_tau"]
    assert not verdict(grow, _series([1, 9, 30, 40]), 10.0)["muonclip_capped"]  # drifting above tau
    assert not verdict(grow, _series([1, 9, 11, 10.5], loss=4.5), 10.0)["loss_comparable"]


@pytest.mark.slow
def test_muon_logits_explode_muonclip_caps_them(tmp_path):
    res = run_evidence(tmp_path)
    v = res["verdict"]
    assert v["muon_grows_past_tau"], v
    assert v["muonclip_capped"], v
    assert v["loss_comparable"], v
    assert v["muonclip_steps_with_clipping"] > 0
    assert res["config"] == json.loads(json.dumps(EVIDENCE_CONFIG))
    assert (tmp_path / "max_logits_muon_vs_muonclip.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "evidence.json").read_text())
    assert len(saved["series"]["muon"]) == EVIDENCE_CONFIG["steps"]


def test_the_command_writes_the_evidence_of_a_short_run_and_reruns_fresh(tmp_path):
    """`k2forge train evidence` runs the pipeline (corpus -> two trainings -> verdict); 20 steps keep it short."""
    from api.cli import main
    out = tmp_path / "ev"
    started = []
    for _ in range(2):          # the second run starts over, it does not reuse the first
        main(["-q", "train", "evidence", "--out", str(out), "--steps", "20"])
        saved = json.loads((out / "evidence.json").read_text())
        assert [len(saved["series"][k]) for k in ("muon", "muonclip")] == [20, 20]
        assert saved["config"]["steps"] == 20 and saved["verdict"]["tau"] == EVIDENCE_CONFIG["qk_clip_tau"]
        assert (out / "max_logits_muon_vs_muonclip.png").read_bytes()[:4] == b"\x89PNG"
        state = json.loads((out / ".k2forge" / "pipeline.json").read_text())
        assert {n: r["status"] for n, r in state["steps"].items()} == dict.fromkeys(
            ["corpus", "muon", "muonclip", "verdict"], "done")
        started.append(state["steps"]["muon"]["started_at"])
        metrics = (out / "muon" / "metrics.jsonl").read_text().splitlines()
        assert sum(json.loads(x)["type"] == "train" for x in metrics) == 20    # one run's rows, not two
    assert started[0] < started[1]            # trained again (timestamps to the second; a run takes longer)
