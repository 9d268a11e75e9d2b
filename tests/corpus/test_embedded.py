"""The packaged models are found and the SmolLM2 GGUF converts to a loadable HF directory with its tokenizer."""
import json

from corpus.embedded import embedded_model_dir, embedded_tokenizer_path, minilm_dir, smollm2_gguf_path


def test_embedded_smollm2_converted_dir():
    assert smollm2_gguf_path().suffix == ".gguf"
    d = embedded_model_dir()
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["vocab_size"] == 49152
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(embedded_tokenizer_path()))
    ids = tok.encode("The Eiffel Tower is 330 metres tall.").ids
    assert tok.decode(ids) == "The Eiffel Tower is 330 metres tall."


def test_minilm_dir_is_sentence_transformers_model():
    d = minilm_dir()
    assert (d / "model.safetensors").exists() and (d / "modules.json").exists()
