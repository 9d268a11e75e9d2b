"""Pipelines: chains of jobs and registered steps, defined as data (YAML or a Python dict), run with resume.

definition.py (the format, references, run order, validation of every step before anything runs),
registry.py (what a step's `kind` names: a job kind or a registered Python step), runner.py (run_pipeline:
state in OUTPUT/.k2forge/pipeline.json, reuse, failure, events), job.py (the `pipeline` job kind, so the REST API
and Ray runs take a pipeline like any job), cli.py (`k2forge pipeline run`), definitions/ (the shipped
pipelines: demo.yaml, corpus-demo.yaml), demo/ (`k2forge demo`: its sizes and registered steps),
report/ (the demo report: report.json, report.md, self-contained report.html), corpus_demo.py
(`k2forge corpus demo`).

This package sits above corpus, rephrase, mathnotes and trainer (it runs their jobs) and below api. Importing it
is cheap: job modules load when a step runs.
"""
