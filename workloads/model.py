"""A byte-level GPT-style decoder.

The same module serves training (``GPT.forward`` over a full block) and serving
(``GPT.step`` over a per-request KV cache), so the two never drift apart.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPTConfig:
    """Shape of the decoder; saved in every checkpoint and export."""

    vocab_size: int = 256
    """Token vocabulary: 256 byte values, so no tokenizer is ever downloaded."""
    block_size: int = 256
    """Longest sequence the model attends over (positions are learned up to here)."""
    n_layer: int = 4
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide ``n_embd``."""
    n_embd: int = 128
    """Width of the residual stream."""
    dropout: float = 0.0
    """Dropout on attention and MLP outputs during training (0 keeps CPU runs deterministic)."""
    bias: bool = False
    """Whether linear and LayerNorm layers carry a bias (False is faster and no worse)."""

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and value <= 0:
                raise ValueError(f"{f.name} must be positive, got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GPTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; accepted: {sorted(known)}")
        return cls(**data)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; position embeddings excluded by default, as nanoGPT counts for MFU."""
        d, L, V = self.n_embd, self.n_layer, self.vocab_size
        per_block = 12 * d * d + (13 * d if self.bias else 0) + 4 * d
        total = L * per_block + V * d + self.block_size * d + 2 * d
        return total - (self.block_size * d if non_embedding else 0)

    def flops_per_token(self) -> int:
        """Training flops per token: 6N + 12·L·H·Q·T (PaLM appendix B, as nanoGPT uses)."""
        head_dim = self.n_embd // self.n_head
        return 6 * self.num_params() + 12 * self.n_layer * self.n_head * head_dim * self.block_size


PRESETS: dict[str, GPTConfig] = {
    "tiny": GPTConfig(block_size=128, n_layer=2, n_head=4, n_embd=128),
    "small": GPTConfig(block_size=1024, n_layer=12, n_head=12, n_embd=768),
    "medium": GPTConfig(block_size=1024, n_layer=24, n_head=16, n_embd=1024),
}
"""Named shapes: ``tiny`` trains in seconds on a laptop CPU, ``small`` is GPT-2 124M
(with a byte vocabulary), ``medium`` is GPT-2 350M."""


def preset(name: str) -> GPTConfig:
    """The named preset, or a ValueError listing the ones that exist."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}"
        ) from None


class KVCache:
    """Keys and values for a fixed number of sequence slots, one tensor pair per layer.

    Slot ``i`` holds one request; ``step`` writes the new keys/values at the
    positions given and attends over whatever the caller's mask allows, so
    requests of different lengths share one batch without seeing each other.
    """

    def __init__(self, config: GPTConfig, slots: int, device=None, dtype=torch.float32):
        head_dim = config.n_embd // config.n_head
        shape = (slots, config.n_head, config.block_size, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        """Per layer, keys [slots, n_head, block_size, head_dim], in the model's dtype."""
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        """Per layer, values, shaped like :attr:`k`."""


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; ``step`` attends over a KV cache instead."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        shape = (B, T, self.n_head, C // self.n_head)
        return tuple(t.view(shape).transpose(1, 2) for t in (q, k, v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    def step(self, x, slots, positions, mask, k_cache, v_cache) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._heads(x)
        rows = slots.view(B, 1).expand(B, T)
        k_cache[rows, :, positions] = k.transpose(1, 2)
        v_cache[rows, :, positions] = v.transpose(1, 2)
        keys, values = k_cache[slots], v_cache[slots]
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    """The feed-forward half of a block: widen 4x, GELU, project back."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """One pre-LayerNorm transformer block: attention then MLP, each on the residual stream."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def step(self, x, slots, positions, mask, k_cache, v_cache) -> torch.Tensor:
        x = x + self.attn.step(self.ln_1(x), slots, positions, mask, k_cache, v_cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only transformer over bytes, GPT-2 layout with tied input/output embeddings."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2 scales residual projections by 1/sqrt(2L) so the stream's variance
        # does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits for every position of ``idx`` [B, T]; mean cross-entropy if ``targets`` given."""
        T = idx.size(1)
        if self.config.block_size < T:
            raise ValueError(f"sequence of {T} tokens exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def step(
        self,
        idx: torch.Tensor,
        positions: torch.Tensor,
        slots: torch.Tensor,
        mask: torch.Tensor,
        cache: KVCache,
    ) -> torch.Tensor:
        """Incremental forward for serving: logits [B, T, V] for new tokens ``idx`` [B, T].

        ``positions`` [B, T] are each token's absolute position in its own sequence,
        ``slots`` [B] the cache slot of each row, and ``mask`` [B, 1, T, block_size]
        (bool, True = may attend) says which cached positions each new token sees.
        Keys and values of the new tokens are written into the cache before attending.
        """
        x = self.wte(idx) + self.wpe(positions)
        for block, k_cache, v_cache in zip(self.blocks, cache.k, cache.v, strict=True):
            x = block.step(x, slots, positions, mask, k_cache, v_cache)
        return self.lm_head(self.ln_f(x))
