"""Job kinds come from the packages' entry points (corpus.spec): pyproject.toml's two groups, complete and
installed, each resolving to a Spec class and a run function; an unknown or half-registered kind is a clear error."""
import importlib.metadata as md
import tomllib
from pathlib import Path

import pytest

from corpus import spec as spec_mod
from corpus.spec import JOB_KINDS, RUN_GROUP, SPEC_GROUP, Spec, SpecError, job_kind, registered_kinds, resolve

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_installed_kinds_are_the_ones_pyproject_declares():
    """Stale metadata (pyproject edited, package not reinstalled) shows here, naming the difference."""
    eps = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]
    declared = {k: (eps[SPEC_GROUP][k], eps[RUN_GROUP][k]) for k in eps[SPEC_GROUP]}
    assert set(eps[SPEC_GROUP]) == set(eps[RUN_GROUP]), "every kind needs both entry points"
    assert JOB_KINDS == declared, "reinstall after editing the entry points: pip install -e ."
    assert {"ingest", "dedup", "pack", "mix", "rephrase", "mathnotes", "train"} <= set(JOB_KINDS)


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
def test_every_kind_resolves_to_a_spec_and_a_run_function(kind):
    spec_path, run_path = JOB_KINDS[kind]
    assert issubclass(resolve(spec_path), Spec) and callable(resolve(run_path))


def test_unknown_kind_names_the_known_ones():
    with pytest.raises(SpecError, match=r"unknown job kind 'nope', expected one of .*dedup.*train"):
        job_kind("nope")


def test_half_registered_kind_is_named_and_nothing_registered_says_how_to_fix(monkeypatch):
    eps = md.EntryPoints([md.EntryPoint("good", "corpus.ingest:IngestSpec", SPEC_GROUP),
                          md.EntryPoint("good", "corpus.ingest:run_ingest", RUN_GROUP),
                          md.EntryPoint("half", "corpus.pack:PackSpec", SPEC_GROUP)])
    monkeypatch.setattr(md, "entry_points", lambda: eps)
    kinds, incomplete = registered_kinds()
    assert kinds == {"good": ("corpus.ingest:IngestSpec", "corpus.ingest:run_ingest")}
    assert incomplete == {"half": f"an entry point in {SPEC_GROUP} but none in {RUN_GROUP}"}
    monkeypatch.setattr(spec_mod, "JOB_KINDS", kinds)
    monkeypatch.setattr(spec_mod, "_INCOMPLETE", incomplete)
    with pytest.raises(SpecError, match=f"job kind 'half' is registered incompletely: an entry point in {SPEC_GROUP}"):
        job_kind("half")
    monkeypatch.setattr(spec_mod, "JOB_KINDS", {})
    with pytest.raises(SpecError, match=r"expected one of none: no installed package registers .*pip install -e"):
        job_kind("ingest")
