"""Evidence probes that run the project's own stages end to end and report what they measure.

`rephrase_vs_repeat`: Kimi K2's Table 1 in miniature (rephrasing beats repetition at equal token budget), built
from a seeded fictional-entity corpus, the rephrase stage, the mixture machinery and the trainer, run as a
pipeline (pipeline.runner: a rerun resumes per step). Depends on corpus, rephrase, trainer and pipeline; nothing
imports it but the CLI (`k2forge evidence ...`) and the job kind `rephrase-vs-repeat`.
"""
