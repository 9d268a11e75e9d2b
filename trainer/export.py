"""Export a K2ForCausalLM as a Hugging Face `deepseek_v3` checkpoint (config.json + model.safetensors).

The checkpoint loads with transformers' `DeepseekV3ForCausalLM.from_pretrained` and reproduces our logits:
module names already match; the stacked expert tensors are split into per-expert keys
`mlp.experts.{j}.{gate,up,down}_proj.weight` (transformers 5.x fuses them again on load, 4.x reads them as is).
MTP modules (`model.mtp_layers.{k}` here) are written in the DeepSeek-V3 checkpoint layout: layer index
num_hidden_layers + k (`model.layers.61.*` for the 61-layer presets) holding the block plus enorm, hnorm,
eh_proj, shared_head.norm, and copies of the shared embedding and head (`embed_tokens`, `shared_head.head`).
transformers 5.x `DeepseekV3ForCausalLM` does not load them into the main model: it lists `model\.layers\.61.*`
as keys to ignore (other indices load with an "unexpected keys" warning), and its MtpModel (generation with
`use_mtp=True`) loads exactly that layer-61 layout, so only a 61-layer export has HF-loadable MTP weights.
`rope_interleave: true` means DeepSeek's adjacent-pair RoPE; `rope_scaling: null` for plain RoPE, because HF
applies YaRN (and its mscale^2 softmax factor) at every length once it is configured.

Special tokens: `eos/bos/pad_token_id` in config.json and generation_config.json (so `generate` stops at EOS)
come from the tokenizer folder's tokenizer_config.json when it has one, and from the training manifest's
tokenizer record (`tokenizer_info`: the `eos_id` the packer put after every document, i.e. the token the model
learnt to end a document with) otherwise; the manifest's EOS wins when both are known. Without either they stay
null rather than transformers' arbitrary defaults. A tokenizer folder with only tokenizer.json gets a minimal
tokenizer_config.json naming those tokens, so `AutoTokenizer` knows them too.

The directory is written atomically: everything goes to a temp dir next to `out_dir`, then one rename.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from trainer.checkpoint import load_model, read_meta
from trainer.config import ModelConfig
from trainer.model import K2ForCausalLM

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja")
OUR_CONFIG_NAME = "k2forge_model_config.json"


def hf_config(config: ModelConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """transformers 5.x DeepseekV3Config fields (4.x names kept where they differ) for this model."""
    c = config
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "moe_intermediate_size": c.moe_intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_attention_heads,
        "n_shared_experts": c.n_shared_experts,
        "n_routed_experts": c.n_routed_experts,
        "routed_scaling_factor": c.routed_scaling_factor,
        "kv_lora_rank": c.kv_lora_rank,
        "q_lora_rank": c.q_lora_rank,
        "qk_rope_head_dim": c.qk_rope_head_dim,
        "qk_nope_head_dim": c.qk_nope_head_dim,
        "v_head_dim": c.v_head_dim,
        "n_group": c.n_group,
        "topk_group": c.topk_group,
        "num_experts_per_tok": c.num_experts_per_tok,
        "first_k_dense_replace": c.first_k_dense_replace,
        "norm_topk_prob": c.norm_topk_prob,
        "topk_method": "noaux_tc",
        "scoring_func": "sigmoid",
        "moe_layer_freq": 1,
        "ep_size": 1,
        "num_nextn_predict_layers": c.num_nextn_predict_layers,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings,
        "initializer_range": c.initializer_range,
        "rms_norm_eps": c.rms_norm_eps,
        "tie_word_embeddings": False,
        "rope_theta": c.rope_theta,
        "rope_scaling": _hf_rope_scaling(c.rope_scaling),
        "rope_interleave": True,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "use_cache": True,
        # no tokenizer known: null rather than transformers' defaults (0/1), which are arbitrary tokens here
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
        "dtype": str(dtype).removeprefix("torch."),
    }


def _hf_rope_scaling(rs: dict[str, Any] | None) -> dict[str, Any] | None:
    if rs is None:
        return None
    out = {k: v for k, v in rs.items() if k != "type"}
    out["rope_type"] = "yarn"
    out["type"] = "yarn"  # 4.x spelling
    return out


def hf_state_dict(model: torch.nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Our state dict under transformers' names, experts split per expert; the routing bias stays fp32."""
    sd = model.state_dict()
    for k in range(model.config.num_nextn_predict_layers):  # DeepSeek-V3 layout: each MTP module stores copies
        sd[f"model.mtp_layers.{k}.embed_tokens.weight"] = sd["model.embed_tokens.weight"]
        sd[f"model.mtp_layers.{k}.shared_head.head.weight"] = sd["lm_head.weight"]
    return hf_tensors(sd.items(), model.config, dtype)


def hf_tensors(items, cfg: ModelConfig, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """(our name, tensor) pairs -> transformers' names: expert stacks split per expert, MTP modules at layer
    index num_hidden_layers + k; contiguous CPU copies in `dtype` (the routing bias stays fp32)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in items:
        t = t.detach()
        if name.startswith("model.mtp_layers."):
            k, rest = name[len("model.mtp_layers."):].split(".", 1)
            name = f"model.layers.{cfg.num_hidden_layers + int(k)}.{rest}"
        if name.endswith("mlp.experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            inter = t.shape[1] // 2
            for j in range(t.shape[0]):
                out[f"{prefix}{j}.gate_proj.weight"] = t[j, :inter]
                out[f"{prefix}{j}.up_proj.weight"] = t[j, inter:]
        elif name.endswith("mlp.experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for j in range(t.shape[0]):
                out[f"{prefix}{j}.down_proj.weight"] = t[j]
        else:
            out[name] = t
    for name, t in out.items():
        keep_fp32 = name.endswith("e_score_correction_bias")
        t = t.to(torch.float32) if keep_fp32 else (t.to(dtype) if dtype is not None else t)
        out[name] = t.contiguous().cpu().clone()  # safetensors: contiguous, no storage shared between keys
    return out


def export_hf(model: torch.nn.Module, config: ModelConfig, out_dir: str | os.PathLike,
              tokenizer_dir: str | os.PathLike | None = None, dtype: torch.dtype | None = None,
              overwrite: bool = False, tokenizer_info: dict[str, Any] | None = None) -> Path:
    """Write config.json, generation_config.json, model.safetensors (and tokenizer files) to `out_dir`
    atomically; return its path. tokenizer_info: the manifest's tokenizer record (eos_id, eos_token)."""
    weight_dtype = dtype or next(iter(model.parameters())).dtype
    return _write_export(Path(out_dir), config, [lambda: hf_state_dict(model, dtype)], weight_dtype,
                         tokenizer_dir, tokenizer_info, overwrite)


def export_checkpoint(ckpt: str | os.PathLike, out_dir: str | os.PathLike,
                      tokenizer_dir: str | os.PathLike | None = None, dtype: torch.dtype | None = None,
                      overwrite: bool = False, tokenizer_info: dict[str, Any] | None = None) -> Path:
    """Export a training checkpoint shard by shard: one safetensors file per transformer block (and one for
    embeddings, final norm and head) read straight from the sharded DCP checkpoint, plus
    model.safetensors.index.json; at most one block's weights are in memory. A checkpoint of the earlier
    full-state format is loaded whole and exported as one file."""
    ckpt = Path(ckpt)
    if (ckpt / "model.pt").exists():
        model, meta = load_model(ckpt)
        return export_hf(model, model.config, out_dir, tokenizer_dir, dtype, overwrite, tokenizer_info)
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader

    config = ModelConfig.from_dict(read_meta(ckpt)["model_config"])
    md = FileSystemReader(str(ckpt / "state")).read_metadata().state_dict_metadata
    shapes = {k[len("model."):]: v for k, v in md.items() if k.startswith("model.") and hasattr(v, "size")}
    groups: dict[str, list[str]] = {}
    for name in shapes:
        parts = name.split(".")
        key = ".".join(parts[:3]) if parts[1] in ("layers", "mtp_layers") else "rest"
        groups.setdefault(key, []).append(name)

    def load(names: list[str]) -> dict[str, torch.Tensor]:
        state = {"model": {n: torch.empty(tuple(shapes[n].size), dtype=shapes[n].properties.dtype)
                           for n in names}}
        dcp.load(state, checkpoint_id=str(ckpt / "state"), planner=DefaultLoadPlanner(allow_partial_load=True),
                 no_dist=True)
        return state["model"]

    def shard(key: str):
        def make() -> dict[str, torch.Tensor]:
            tensors = load(groups[key])
            if key.startswith("model.mtp_layers."):  # the DeepSeek-V3 layout's copies of embedding and head
                shared = load(["model.embed_tokens.weight", "lm_head.weight"])
                tensors[f"{key}.embed_tokens.weight"] = shared["model.embed_tokens.weight"]
                tensors[f"{key}.shared_head.head.weight"] = shared["lm_head.weight"]
            return hf_tensors(tensors.items(), config, dtype)
        return make

    order = sorted(groups, key=lambda k: (k != "rest", k.split(".")[1] if k != "rest" else "",
                                          int(k.split(".")[2]) if k != "rest" else 0))
    weight_dtype = dtype or shapes["lm_head.weight"].properties.dtype
    import warnings
    with warnings.catch_warnings():  # one process reads the shards: DCP's "single process" warning is moot
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        return _write_export(Path(out_dir), config, [shard(k) for k in order], weight_dtype, tokenizer_dir,
                             tokenizer_info, overwrite)


def _write_export(out_dir: Path, config: ModelConfig, shards: list, weight_dtype: torch.dtype,
                  tokenizer_dir, tokenizer_info, overwrite: bool) -> Path:
    """Write the export into a temp dir beside `out_dir`, then rename it into place. shards: callables each
    returning a dict of HF tensors; one -> model.safetensors, several -> model-i-of-n files + index."""
    from safetensors.torch import save_file

    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"export_hf: {out_dir} already exists (pass overwrite=True to replace it)")
    tok_files = _tokenizer_files(tokenizer_dir, config) if tokenizer_dir is not None else []
    special = _special_token_ids(Path(tokenizer_dir) if tokenizer_dir is not None else None, tokenizer_info)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        weight_map, total = {}, 0
        for i, make in enumerate(shards):
            name = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            tensors = make()
            save_file(tensors, str(tmp / name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(tensors, name))
            total += sum(t.numel() * t.element_size() for t in tensors.values())
            del tensors  # one shard in memory at a time
        if len(shards) > 1:
            (tmp / "model.safetensors.index.json").write_text(json.dumps(
                {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=1) + "\n")
        ids = {k: v for k, v in special.items() if k.endswith("_id")}
        cfg = {**hf_config(config, weight_dtype), **ids}
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps({**ids, "_from_model_config": True}, indent=2) + "\n")
        (tmp / OUR_CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        for f in tok_files:
            shutil.copy2(f, tmp / f.name)
        if tok_files and not any(f.name == "tokenizer_config.json" for f in tok_files) and special.get("eos_token"):
            names = {f"{r}_token": special[f"{r}_token"] for r in ("bos", "eos", "pad") if special.get(f"{r}_token")}
            (tmp / "tokenizer_config.json").write_text(json.dumps(
                {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": config.max_position_embeddings,
                 **names}, indent=2) + "\n")
        _replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, old)  # two renames: the old export is removed only once the new one is in place
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _tokenizer_files(tokenizer_dir: str | os.PathLike, config: ModelConfig) -> list[Path]:
    d = Path(tokenizer_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"export_hf: tokenizer_dir {d} is not a directory")
    files = [d / n for n in TOKENIZER_FILES if (d / n).is_file()]
    if not any(f.name in ("tokenizer.json", "tokenizer.model", "vocab.json") for f in files):
        raise FileNotFoundError(f"export_hf: no tokenizer.json / vocab.json / tokenizer.model in {d}")
    if (d / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        n = Tokenizer.from_file(str(d / "tokenizer.json")).get_vocab_size()
        if n > config.vocab_size:
            raise ValueError(f"export_hf: tokenizer in {d} has {n} tokens but the model's vocab_size is "
                             f"{config.vocab_size}")
    return files


def _special_token_ids(d: Path | None, info: dict[str, Any] | None) -> dict[str, Any]:
    """{role}_token_id (and {role}_token names) for bos/eos/pad: tokenizer_config.json's roles resolved through
    tokenizer.json, then the manifest's EOS (which also stands in for bos/pad when the folder names none)."""
    out: dict[str, Any] = {}
    tok = None
    if d is not None and (d / "tokenizer.json").is_file():
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    if d is not None and tok is not None and (d / "tokenizer_config.json").is_file():
        tok_cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        for role in ("bos", "eos", "pad"):
            token = tok_cfg.get(f"{role}_token")
            if isinstance(token, dict):  # older configs store AddedToken dicts
                token = token.get("content")
            out[f"{role}_token_id"] = tok.token_to_id(token) if isinstance(token, str) else None
            out[f"{role}_token"] = token if isinstance(token, str) else None
    eos = (info or {}).get("eos_id")
    if eos is not None:
        eos_token = (info or {}).get("eos_token") or (tok.id_to_token(int(eos)) if tok is not None else None)
        if tok is not None and eos_token is not None and tok.token_to_id(eos_token) != int(eos):
            raise ValueError(f"export_hf: the manifest's eos_id {eos} ({eos_token!r}) is not that token's id in "
                             f"{d / 'tokenizer.json'}: another tokenizer than the one the data was packed with")
        out["eos_token_id"], out["eos_token"] = int(eos), eos_token
        for role in ("bos", "pad"):  # packed documents start after an EOS: it is their separator both ways
            if out.get(f"{role}_token_id") is None:
                out[f"{role}_token_id"], out[f"{role}_token"] = int(eos), eos_token
    return out


def load_export(export_dir: str | os.PathLike, attn_impl: str = "auto") -> torch.nn.Module:
    """Rebuild our K2ForCausalLM from an export (inverse of export_hf)."""
    from safetensors.torch import load_file

    d = Path(export_dir)
    config = ModelConfig.from_dict(json.loads((d / OUR_CONFIG_NAME).read_text()))
    files = sorted(d.glob("model-*-of-*.safetensors")) or [d / "model.safetensors"]
    flat = {k: v for f in files for k, v in load_file(str(f)).items()}
    model = K2ForCausalLM(config, attn_impl=attn_impl, init_weights=False)
    state = {}
    for name in model.state_dict():
        if name.startswith("model.mtp_layers."):  # stored under the DeepSeek-V3 checkpoint's layer index
            k, rest = name[len("model.mtp_layers."):].split(".", 1)
            flat_name = f"model.layers.{config.num_hidden_layers + int(k)}.{rest}"
        else:
            flat_name = name
        if name.endswith("mlp.experts.gate_up_proj"):
            p = flat_name[: -len("gate_up_proj")]
            state[name] = torch.stack([torch.cat([flat[f"{p}{j}.gate_proj.weight"], flat[f"{p}{j}.up_proj.weight"]])
                                       for j in range(config.n_routed_experts)])
        elif name.endswith("mlp.experts.down_proj"):
            p = flat_name[: -len("down_proj")]
            state[name] = torch.stack([flat[f"{p}{j}.down_proj.weight"] for j in range(config.n_routed_experts)])
        else:
            state[name] = flat[flat_name]
    model.load_state_dict(state, strict=True)
    return model
