"""The built-in language-model catalogue: size and shape of each model, for LLM serving.

``sim.config.serving`` turns a model, a precision and a GPU pool into serving times and a KV
cache capacity. What it needs of a model:

- ``params_b``, the number of parameters (billions): the weights' size at a precision, and the
  compute of a prefill pass (about 2 FLOPs per parameter per token);
- ``layers`` and ``hidden_size``: the all-reduces of tensor parallelism (two per layer, each of
  ``tokens × hidden_size`` FP16 values);
- ``layers``, ``kv_heads`` and ``head_dim``: the KV cache, kept in FP16 whatever the weights'
  precision, ``2 (K and V) × layers × kv_heads × head_dim × 2 bytes`` per token.

How the figures were chosen: the shapes are those of each model's Hugging Face ``config.json``
(``num_hidden_layers``, ``hidden_size``, ``num_key_value_heads``, and ``head_dim`` =
``hidden_size / num_attention_heads``). ``params_b`` is counted from the same shapes (embedding
and untied output head ``2 × vocab_size × hidden_size``; per layer ``2 × hidden² +
2 × hidden × kv_heads × head_dim`` for attention, ``3 × hidden × intermediate_size`` for the
MLP, two RMSNorm vectors; one final norm) and agrees with the size Hugging Face shows for each
model. GB are 10⁹ bytes throughout.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sim.config.base import Frozen, Name

DTYPE_BYTES: dict[str, float] = {"fp16": 2, "bf16": 2, "fp8": 1}
"""Bytes per weight at each precision the catalogue knows."""

KV_BYTES_PER_VALUE = 2
"""Bytes per cached key or value element: the KV cache is kept in FP16 (quantised KV is not
modelled)."""


def dtype_bytes(precision: str) -> float:
    """Bytes per weight at ``precision``; a ValueError names the known precisions."""
    try:
        return DTYPE_BYTES[precision]
    except KeyError:
        known = ", ".join(sorted(DTYPE_BYTES))
        raise ValueError(f"unknown precision {precision!r}; expected one of {known}") from None


class LanguageModel(Frozen):
    """A decoder-only transformer: parameters and the shapes that size its KV cache."""

    name: Name
    """The model's name."""
    params_b: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    """Parameters (billions)."""
    layers: Annotated[int, Field(ge=1)]
    """Transformer layers (``num_hidden_layers``)."""
    hidden_size: Annotated[int, Field(ge=1)]
    """Width of the residual stream (``hidden_size``)."""
    kv_heads: Annotated[int, Field(ge=1)]
    """Key/value heads (``num_key_value_heads``; fewer than the query heads under grouped-query
    attention)."""
    head_dim: Annotated[int, Field(ge=1)]
    """Size of one attention head."""

    def weights_gb(self, precision: str) -> float:
        """Size of the weights at ``precision`` (GB = 10⁹ bytes): ``params_b × bytes``."""
        return self.params_b * dtype_bytes(precision)

    def kv_bytes_per_token(self) -> float:
        """FP16 KV cache of one token (bytes): ``2 × layers × kv_heads × head_dim × 2``."""
        return float(2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES_PER_VALUE)


BUILTIN_MODELS: dict[str, LanguageModel] = {
    model.name: model
    for model in (
        # meta-llama/Meta-Llama-3-8B config.json: num_hidden_layers 32, hidden_size 4096,
        # num_attention_heads 32 (head_dim 128), num_key_value_heads 8, intermediate_size
        # 14336, vocab_size 128256, tie_word_embeddings false. Counted: 8,030,261,248
        # parameters (Hugging Face shows 8.03B).
        LanguageModel(
            name="llama-3-8b", params_b=8.03, layers=32, hidden_size=4096, kv_heads=8, head_dim=128
        ),
        # meta-llama/Meta-Llama-3-70B config.json: num_hidden_layers 80, hidden_size 8192,
        # num_attention_heads 64 (head_dim 128), num_key_value_heads 8, intermediate_size
        # 28672, vocab_size 128256. Counted: 70,553,706,496 parameters (Hugging Face: 70.6B).
        LanguageModel(
            name="llama-3-70b",
            params_b=70.55,
            layers=80,
            hidden_size=8192,
            kv_heads=8,
            head_dim=128,
        ),
        # meta-llama/Llama-2-70b-hf config.json: num_hidden_layers 80, hidden_size 8192,
        # num_attention_heads 64 (head_dim 128), num_key_value_heads 8 (grouped-query attention,
        # Llama 2 paper, Touvron et al. 2023, §2.2), intermediate_size 28672, vocab_size 32000.
        # Counted: 68,976,648,192 parameters (Hugging Face: 69B). The model the Splitwise
        # measurements were taken on (sim.config.serving).
        LanguageModel(
            name="llama-2-70b",
            params_b=68.98,
            layers=80,
            hidden_size=8192,
            kv_heads=8,
            head_dim=128,
        ),
    )
}
