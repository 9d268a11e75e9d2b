"""k2forge corpus layer: document schema, parquet shards, executors, dedup, tokenize/pack, mixtures.

Importing this package is cheap: heavy dependencies (tokenizers, datasketch, ray, datasets) load where used.
"""
