"""The demo report: report.py gathers the facts from the outputs on disk, figures.py draws the PNGs,
render.py writes them as Markdown and as one self-contained HTML page."""
