"""Kimi-K2 / DeepSeek-V3 style MoE (MLA + DeepSeekMoE) trained with MuonClip; HF export."""
