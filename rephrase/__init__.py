"""LLM rewriting of knowledge text: engines, styles, chunk-wise autoregressive generation, fidelity checks."""
