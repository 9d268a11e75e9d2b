"""Shared by the verifier's feature tests: one default Verifier per module, and the features of one pair."""
import pytest

from rephrase.verify import Verifier, VerifierSpec
from rephrase.verify.consistency import features_of


@pytest.fixture(scope="module")
def verifier():
    return Verifier(VerifierSpec())


def pair_features(verifier, source, rewrite):
    """{name: Feature} of one (source, rewrite) pair under `verifier`."""
    [(_, ctx)] = verifier.run_checks_with_contexts([(source, rewrite)])
    return {f.name: f for f in features_of(ctx)}
