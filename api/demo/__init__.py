"""`k2forge demo`: the whole chain on the bundled samples, from raw documents to a trained model and a report.

pipeline.py (the resumable chain), stages.py (one ordinary job per stage), config.py (demo.yaml sizes and the
demo mixture.yaml), report.py / render.py / figures.py (report.json, report.md, self-contained report.html),
cli.py (the click command). Importing this package is cheap: torch and friends load inside the stages.
"""
