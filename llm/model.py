"""Models and tokenizers: build a tiny one locally, load and save any local Hugging Face causal LM.

`build_tiny` writes a small Qwen2 or Llama model with random weights and a character-level
fast tokenizer (one token per character of the task alphabet, plus ``<pad>``, ``<eos>``,
``<unk>``), trained nowhere and downloaded from nowhere. With ``tokenizer="bpe"`` it writes a
Qwen2 model with a real byte-level BPE tokenizer instead (`bpe_tokenizer`, trained here with
``tokenizers`` on the task corpus): Qwen's special tokens ``<|endoftext|>``, ``<|im_start|>``,
``<|im_end|>``, a ChatML chat template, eos ``<|im_end|>``, pad ``<|endoftext|>``, and both as stop
ids in ``generation_config.eos_token_id`` — the layout of a Qwen2.5 instruct model. `load_model` loads any local model
directory: float32 on CPU, bfloat16 with SDPA attention on CUDA. Nothing here contacts a hub.

`check_model_dir` (run by `load_model` first) turns a broken directory into one `ModelError`
line naming the file: no or invalid ``config.json``, no tokenizer files, a safetensors weight
file that is truncated or has a damaged header. `context_length` is the model's number of
positions, for `llm.data.check_prompts`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.utils import logging as hf_logging

__all__ = [
    "CHATML_TEMPLATE",
    "QWEN_SPECIAL_TOKENS",
    "SHAPES",
    "SPECIAL_TOKENS",
    "TOKENIZER_FILES",
    "ModelError",
    "bpe_tokenizer",
    "build_tiny",
    "char_tokenizer",
    "check_model_dir",
    "context_length",
    "count_parameters",
    "load_model",
    "save_model",
]

log = logging.getLogger(__name__)
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
"""A model directory needs at least one of these (a fast tokenizer, SentencePiece, BPE or WordPiece vocab)."""


QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""Qwen's ChatML layout: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message, then the assistant header."""
SHAPES: dict[str, dict[str, int]] = {
    "qwen2.5-0.5b": dict(
        hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2, intermediate_size=4864, vocab_size=151_936
    ),
    "qwen2.5-1.5b": dict(
        hidden_size=1536, num_layers=28, num_heads=12, num_kv_heads=2, intermediate_size=8960, vocab_size=151_936
    ),
}
"""Published shapes (config.json of Qwen2.5-0.5B / -1.5B) for random-initialised stand-ins (`build_tiny(shape=...)`)."""


class ModelError(ValueError):
    """A model directory that cannot be loaded; the one-line message names the file."""


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer with one token per character of ``alphabet`` (spaces included)."""
    chars = sorted(set(alphabet))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", padding_side="left"
    )
    return tok


def bpe_tokenizer(corpus: list[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``corpus`` with Qwen's special tokens and a ChatML template.

    Byte level: every text encodes (no unknown token). eos is ``<|im_end|>`` (ends an assistant turn),
    pad is ``<|endoftext|>``.
    """
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    chat = ["system", "user", "assistant", "\n"]
    core.train_from_iterator(list(corpus) + chat, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>", padding_side="left"
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny(
    out_dir: str | Path,
    *,
    alphabet: str,
    arch: str = "qwen2",
    tokenizer: str = "char",
    corpus: list[str] | None = None,
    vocab_size: int = 512,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 256,
    seed: int = 0,
    embedding_size: int = 0,
    shape: str = "",
) -> Path:
    """Write a randomly initialised tiny causal LM and its tokenizer to ``out_dir``.

    ``tokenizer``: ``"char"`` (over ``alphabet``) or ``"bpe"`` (`bpe_tokenizer` on ``corpus`` with
    ``vocab_size`` entries, Qwen2 only). ``shape`` (a key of `SHAPES`) overrides the size arguments
    with a published model's shape, its embedding rows included; ``embedding_size`` > the tokenizer's
    size pads the embedding (the extra ids are never produced by the tokenizer).
    """
    if arch not in ("qwen2", "llama"):
        raise ValueError(f"arch must be 'qwen2' or 'llama', got {arch!r}")
    if tokenizer not in ("char", "bpe"):
        raise ValueError(f"tokenizer must be 'char' or 'bpe', got {tokenizer!r}")
    if shape:
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {sorted(SHAPES)}, got {shape!r}")
        dims = SHAPES[shape]
        hidden_size, num_layers, num_heads = dims["hidden_size"], dims["num_layers"], dims["num_heads"]
        num_kv_heads, intermediate_size = dims["num_kv_heads"], dims["intermediate_size"]
        embedding_size = dims["vocab_size"]
    tok = char_tokenizer(alphabet) if tokenizer == "char" else bpe_tokenizer(corpus or [alphabet], vocab_size)
    common = dict(
        vocab_size=max(len(tok), embedding_size),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        rope_theta=10_000.0,
    )
    torch.manual_seed(seed)
    if arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    stops = (
        [tok.eos_token_id]
        if tokenizer == "char"
        else [tok.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    )
    model.generation_config.eos_token_id = stops[0] if len(stops) == 1 else stops
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = None
    out = Path(out_dir)
    save_model(model, tok, out)
    meta = {
        "arch": arch,
        "tokenizer": tokenizer,
        "vocabulary": len(tok),
        "parameters": count_parameters(model),
        "alphabet": "".join(sorted(set(alphabet))),
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "seed": seed,
    }
    (out / "tiny_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_model(path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None):
    """(model, tokenizer) from a local directory; float32 on CPU, bfloat16 + SDPA on CUDA by default.

    A broken directory raises `ModelError` (one line naming the file), see `check_model_dir`.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is not a model directory (no config.json)")
    check_model_dir(path)
    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kwargs = {"local_files_only": True, "dtype": dtype}
    if device.type == "cuda":
        kwargs["attn_implementation"] = "sdpa"
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs).to(device)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{path}: the model does not load ({_first_line(exc)})") from None
    try:
        tok = _load_tokenizer(path)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise ModelError(f"{path}: the tokenizer does not load ({_first_line(exc)})") from None
    if len(tok) < 2:
        raise ModelError(f"{path}: the tokenizer has {len(tok)} token(s); its files are empty or not a tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return model, tok


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def check_model_dir(path: str | Path) -> None:
    """Raise `ModelError` (one line naming the file) unless ``path`` looks like a loadable model directory.

    Checks: ``config.json`` is a JSON object; one of `TOKENIZER_FILES` exists; every safetensors
    weight file (``model.safetensors``, or the shards named by ``model.safetensors.index.json``)
    has a readable header and exactly the size the header implies (8 + header + data bytes).
    """
    path = Path(path)
    config = path / "config.json"
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path} is not a model directory (no config.json)") from None
    except UnicodeDecodeError:
        raise ModelError(f"{config}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise ModelError(f"{config}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{config}: must be a JSON object, got {type(cfg).__name__}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelError(f"{path}: no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")
    for weights in _safetensors_files(path):
        _check_safetensors(weights)


def _safetensors_files(path: Path) -> list[Path]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{index}: not a valid weight index ({type(exc).__name__}: {exc})") from None
        return [path / name for name in shards]
    single = path / "model.safetensors"
    return [single] if single.exists() else []


def _check_safetensors(file: Path) -> None:
    """The safetensors layout: 8-byte little-endian header length n, n bytes of JSON, then the data."""
    if not file.is_file():
        raise ModelError(f"{file}: weight file is missing")
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ModelError(f"{file}: truncated weight file ({size} bytes, no header)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise ModelError(f"{file}: truncated weight file ({size} bytes, header alone needs {8 + n})")
        try:
            header = json.loads(fh.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise ModelError(f"{file}: damaged weight file (its header is not valid safetensors JSON)") from None
    if size != 8 + n + end:
        state = "truncated" if size < 8 + n + end else "damaged"
        raise ModelError(f"{file}: {state} weight file ({size} bytes, its header says {8 + n + end})")


def context_length(model_or_config) -> int | None:
    """The number of positions the model takes (``max_position_embeddings``), None if it does not say."""
    config = getattr(model_or_config, "config", model_or_config)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _load_tokenizer(path: Path):
    """The directory's tokenizer; a generic fast tokenizer is loaded as such.

    AutoTokenizer would pick the tokenizer class of the *model* type (e.g. Qwen2Tokenizer)
    and rebuild its pre-tokenizer, which breaks tokenizers that are not that model's own,
    such as the character tokenizer of `build_tiny`.
    """
    cfg_file = path / "tokenizer_config.json"
    cls = json.loads(cfg_file.read_text()).get("tokenizer_class") if cfg_file.is_file() else None
    if cls in ("TokenizersBackend", "PreTrainedTokenizerFast"):
        return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def save_model(model, tokenizer, path: str | Path) -> Path:
    """Save weights (safetensors), config and tokenizer so `load_model` restores them exactly."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
