"""`k2forge pipeline run`: a YAML definition with parameters, resume, --dry-run, and the exit statuses."""
from __future__ import annotations

import json

import pytest
import yaml

from api.cli import main
from pipeline import registry
from tests.pipeline import steps as test_steps

DEFINITION = {
    "name": "two-jobs",
    "params": {"sample": "web"},
    "steps": [
        {"name": "dedup", "kind": "dedup", "about": "near duplicates out",
         "spec": {"inputs": ["${steps.ingest.output}"], "output": "${output}/dedup"}},
        {"name": "ingest", "kind": "ingest",
         "spec": {"inputs": ["${samples}/${params.sample}.jsonl"], "output": "${output}/raw"}}]}


def _write(tmp_path, defn) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(defn))
    return str(path)


def _main(capsys, *args) -> tuple[int, str, str]:
    try:
        main(["-q", "pipeline", "run", *args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_resume_and_a_changed_parameter(tmp_path, capsys):
    path, out = _write(tmp_path, DEFINITION), str(tmp_path / "out")
    code, text, _ = _main(capsys, path, "--output", out, "--dry-run")
    assert code == 0 and text.splitlines() == [" 1. ingest (ingest)", " 2. dedup (dedup) after ingest: near duplicates out"]
    assert not (tmp_path / "out").exists()
    code, text, _ = _main(capsys, path, "--output", out)
    assert code == 0 and "ingest" in text and "ran" in text
    code, text, _ = _main(capsys, path, "--output", out, "--json")
    res = json.loads(text)
    assert res["reused"] == ["ingest", "dedup"] and res["ran"] == []
    assert res["steps"]["ingest"]["summary"]["inputs"] == 1
    code, text, _ = _main(capsys, path, "--output", out, "--set", "sample=code", "--json")
    res = json.loads(text)
    assert code == 0 and res["ran"] == ["ingest", "dedup"]
    assert res["steps"]["ingest"]["summary"]["rows_out"] == res["steps"]["dedup"]["summary"]["docs_in"]


def test_exit_status_2_for_an_invalid_definition_and_1_for_a_failed_step(tmp_path, capsys, monkeypatch):
    bad = {**DEFINITION, "steps": [{**DEFINITION["steps"][0], "depends": ["nowhere"]}, DEFINITION["steps"][1]]}
    code, _, err = _main(capsys, _write(tmp_path, bad), "--output", str(tmp_path / "o"))
    assert code == 2 and "step 'dedup': depends: unknown step(s) nowhere" in err
    code, _, err = _main(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2 and "missing.yaml: pipeline definition not found" in err
    monkeypatch.setitem(registry.STEPS, "test.write", ("tests.pipeline.steps:WriteSpec", "tests.pipeline.steps:write"))
    failing = {"name": "f", "steps": [{"name": "boom", "kind": "test.write",
                                       "spec": {"output": "${output}/x.txt", "fail": True}}]}
    code, _, err = _main(capsys, _write(tmp_path, failing), "--output", str(tmp_path / "f"))
    test_steps.CALLS.clear()
    assert code == 1 and "step 'boom' failed: RuntimeError: boom failed on purpose" in err


@pytest.mark.parametrize("item", ["novalue", "=3"])
def test_set_needs_name_and_value(tmp_path, capsys, item):
    code, _, err = _main(capsys, _write(tmp_path, DEFINITION), "--set", item)
    assert code == 2 and "NAME=VALUE" in err
