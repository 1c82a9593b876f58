"""A lean decode engine for Llama-family causal LMs: static KV cache, one-graph decode step, compaction.

`StaticDecoder` runs the model's own modules (embed → blocks → norm → lm_head) instead of the
Hugging Face forward, so a decode step is ~10 tensor ops per layer and nothing else:

    x = embed(tok)                                    (B, 1, H)
    per block:  h = norm₁(x);  q, k, v = W_q h, W_k h, W_v h   (Qwen3: per-head q/k RMSNorm)
                q, k ← RoPE(q, k; pos)                         q·cos + rot½(q)·sin
                K[:, :, c] ← k;  V[:, :, c] ← v                (static cache, column c = P + t)
                x ← x + W_o · softmax(q Kᵀ/√d + mask) V        (keys valid: prompt ∪ [P, c])
                x ← x + MLP(norm₂(x))
    logits = lm_head(norm(x))  →  `llm.rollout.sample_step`    (sampling inside the same graph)

The cache is pre-allocated once per `generate` call, shape (B, H_kv, L, d) per layer with
L = prompt width + max_new_tokens rounded up to a multiple of 64 (so compiled shapes repeat
across calls); writes are in-place ``index_copy_`` at a tensor column, so the step has static
shapes and no host sync. The step can be wrapped in ``torch.compile(fullgraph=True)`` and, on
CUDA, captured into a ``torch.cuda.CUDAGraph`` per batch bucket (one replay = one launch).

Finished rows are compacted out: when the live rows fit in half the current batch, they are
gathered into a batch of the next power of two (cache rows included), so one long response
does not keep the whole batch decoding (at most log₂ B + 1 compiled shapes / graphs).

The prefill runs the same modules over the left-padded prompt with a causal + padding mask.
Models it cannot handle (other architectures, sliding-window attention, FSDP-sharded or
forward-patched models) are named by `unsupported_reason`; `llm.rollout.generate` then falls
back to the eager Hugging Face loop with a one-line notice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SUPPORTED_TYPES", "StaticDecoder", "unsupported_reason"]

SUPPORTED_TYPES = ("qwen2", "qwen3", "llama", "mistral")
"""``config.model_type`` values with the block layout written out above."""

_COLUMN_ROUND = 64


def unsupported_reason(model) -> str | None:
    """Why `StaticDecoder` cannot run ``model`` (one phrase), or None when it can."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule) or not isinstance(model, torch.nn.Module):
        return f"{type(model).__name__} is a sharded or wrapped model"
    if "forward" in vars(model):
        return "its forward has been replaced"
    cfg = getattr(model, "config", None)
    kind = getattr(cfg, "model_type", None)
    if kind not in SUPPORTED_TYPES:
        return f"model type {kind!r} is not one of {SUPPORTED_TYPES}"
    base = getattr(model, "model", None)
    if not all(hasattr(base, name) for name in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return "it lacks model.embed_tokens/layers/norm/rotary_emb"
    if any(kind != "full_attention" for kind in getattr(cfg, "layer_types", None) or ()):
        return "it uses sliding-window attention"
    rope = (getattr(cfg, "rope_scaling", None) or getattr(cfg, "rope_parameters", None) or {}).get("rope_type")
    if rope in ("dynamic", "longrope"):
        return f"its RoPE type {rope!r} depends on the sequence length"
    if getattr(cfg, "final_logit_softcapping", None):
        return "it soft-caps its logits"
    return None


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """Prefill + decode steps of one model over a static KV cache (see the module docstring).

    ``compile``: wrap the decode step in ``torch.compile(fullgraph=True, dynamic=False)``.
    ``cuda_graphs``: capture the (compiled) step per batch bucket on CUDA and replay it.
    """

    def __init__(self, model, *, compile: bool = False, cuda_graphs: bool = False) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"the static engine cannot run this model: {reason}")
        self.model, self.base = model, model.model
        self.layers = list(self.base.layers)
        cfg = model.config
        self.n_heads, self.n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = self.layers[0].self_attn.head_dim
        self.cuda_graphs = cuda_graphs
        self.exact_span = not (compile or cuda_graphs)  # no fixed shapes needed: attend over exactly col + 1
        self._step, self.compiled = self._decode_step, compile
        if compile:
            import torch._dynamo

            cfg_dyn = torch._dynamo.config  # one compiled shape per batch bucket and temperature
            cfg_dyn.recompile_limit = max(getattr(cfg_dyn, "recompile_limit", 8), 64)
            self._step = torch.compile(self._decode_step, fullgraph=True, dynamic=False)
        self._rope_len = 0

    # ------------------------------------------------------------------ rope
    def _rope(self, length: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) tables (length, d) from the model's own rotary embedding, in the model dtype."""
        if self._rope_len < length:
            positions = torch.arange(length, device=like.device)[None]
            cos, sin = self.base.rotary_emb(like, positions)
            self._cos, self._sin, self._rope_len = cos[0], sin[0], length
        return self._cos, self._sin

    def _attention_inputs(self, layer, h, cos, sin):
        """(q, k, v) of one block for hidden ``h`` (B, S, H): (B, heads, S, d), RoPE applied to q and k."""
        attn = layer.self_attn
        b, s, _ = h.shape
        q = attn.q_proj(h).view(b, s, self.n_heads, self.head_dim)
        k = attn.k_proj(h).view(b, s, self.n_kv, self.head_dim)
        v = attn.v_proj(h).view(b, s, self.n_kv, self.head_dim).transpose(1, 2)
        if hasattr(attn, "q_norm"):  # Qwen3: RMSNorm over each head's q and k
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        return q, k, v

    def _block(self, layer, x, cos, sin, write, mask, decode: bool = False):
        """One transformer block; ``write(k, v) -> (K, V)`` stores the new keys/values and returns the cache.

        ``decode``: one query per row, attention written out (`_decode_attention`) instead of SDPA.
        """
        attn = layer.self_attn
        q, k, v = self._attention_inputs(layer, layer.input_layernorm(x), cos, sin)
        keys, values = write(k, v)
        if decode:
            o = self._decode_attention(q, keys, values, mask, attn.scaling)
        else:
            o = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, scale=attn.scaling, enable_gqa=self.n_heads != self.n_kv
            )
        x = x + attn.o_proj(o.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def _decode_attention(self, q, keys, values, mask, scale: float) -> torch.Tensor:
        """softmax(q Kᵀ·scale, masked) V for one query per row, grouped-query heads without copying K/V.

        q (B, H, 1, d); keys, values (B, H_kv, S, d); mask (B, 1, 1, S) bool. Query head h reads
        key/value head h // (H / H_kv) (the Hugging Face ``repeat_kv`` order), so q is viewed as
        (B, H_kv, H/H_kv, d) and two batched matmuls do the work: at one query per row this is
        cheaper than the fused SDPA kernels (no tiling, no per-call set-up). Returns (B, H, 1, d).
        """
        b, h, _, d = q.shape
        scores = torch.matmul(q.view(b, self.n_kv, h // self.n_kv, d), keys.transpose(-1, -2)) * scale
        probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1, dtype=torch.float32)
        return torch.matmul(probs.to(values.dtype), values).view(b, h, 1, d)

    # --------------------------------------------------------------- prefill
    def new_cache(self, batch: int, columns: int, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Zeroed (K, V) per layer, each (batch, H_kv, columns, d) in the model's dtype and device."""
        shape = (batch, self.n_kv, columns, self.head_dim)
        return [(like.new_zeros(shape), like.new_zeros(shape)) for _ in self.layers]

    @staticmethod
    def columns(prompt_width: int, max_new_tokens: int) -> int:
        """Cache columns: prompt + new tokens, rounded up so compiled shapes repeat across calls."""
        need = prompt_width + max_new_tokens
        return -(-need // _COLUMN_ROUND) * _COLUMN_ROUND

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, cache) -> torch.Tensor:
        """Run the left-padded prompt (B, P) into columns [0, P) of ``cache``; last-position logits (B, V)."""
        p = ids.shape[1]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        x = self.base.embed_tokens(ids)
        cos_t, sin_t = self._rope(cache[0][0].shape[2], x)
        cos, sin = cos_t[pos][:, None], sin_t[pos][:, None]  # (B, 1, P, d)
        causal = torch.ones(p, p, dtype=torch.bool, device=ids.device).tril()
        attend = causal & mask.bool()[:, None, None, :]
        attend = attend | torch.eye(p, dtype=torch.bool, device=ids.device)  # padding rows: no all-masked row
        for layer, (kc, vc) in zip(self.layers, cache, strict=True):

            def write(k, v, kc=kc, vc=vc):
                kc[:, :, :p] = k
                vc[:, :, :p] = v
                return k, v

            x = self._block(layer, x, cos, sin, write, attend)
        return self.model.lm_head(self.base.norm(x[:, -1:]))[:, 0]

    # ---------------------------------------------------------------- decode
    def _decode_step(self, tok, pos, col, u, valid, cache, span, temperature, top_p, top_k):
        """Feed tokens ``tok`` (B,) at positions ``pos`` (B,) into cache column ``col`` (1,); sample the next.

        ``valid`` (B, L) bool marks the keys each row attends to (column ``col`` is set here);
        attention reads only the first ``span`` columns (a power-of-two multiple of 64 > col).
        Returns (next token, its log-prob, entropy), each (B,).
        """
        from .rollout import sample_step

        valid.index_fill_(1, col, True)
        mask = valid[:, None, None, :span]
        x = self.base.embed_tokens(tok[:, None])
        cos, sin = self._cos[pos][:, None, None], self._sin[pos][:, None, None]  # (B, 1, 1, d)
        for layer, (kc, vc) in zip(self.layers, cache, strict=True):

            def write(k, v, kc=kc, vc=vc):
                kc.index_copy_(2, col, k)
                vc.index_copy_(2, col, v)
                return kc[:, :, :span], vc[:, :, :span]

            x = self._block(layer, x, cos, sin, write, mask, decode=True)
        logits = self.model.lm_head(self.base.norm(x))[:, 0]
        return sample_step(logits, u, temperature, top_p=top_p, top_k=top_k)

    def stepper(self, cache, valid, temperature: float, top_p: float, top_k: int):
        """``step(tok, pos, col, u, span) -> (tok, logp, ent)`` over this bucket's buffers.

        On CUDA with graphs, one graph per attention ``span`` is captured at its first use and replayed.
        """
        args = (temperature, top_p, top_k)
        if not (self.cuda_graphs and valid.is_cuda):
            if not self.compiled:
                return lambda tok, pos, col, u, span: self._step(tok, pos, col, u, valid, cache, span, *args)
            checked: set[int] = set()

            def call(tok, pos, col, u, span):
                # The first call per span checks all of the compiled step's guards (~1,800 for an
                # 8-layer model: every parameter and module); the later calls of this bucket pass
                # the same tensors with the same shapes, so only the guards that tell the compiled
                # variants apart (batch, span) are checked.
                if span not in checked:
                    checked.add(span)
                    return self._step(tok, pos, col, u, valid, cache, span, *args)
                with torch.compiler.set_stance(skip_guard_eval_unsafe=True):
                    return self._step(tok, pos, col, u, valid, cache, span, *args)

            return call
        graphs: dict[int, _GraphedStep] = {}

        def replay(tok, pos, col, u, span):
            if span not in graphs:
                graphs[span] = _GraphedStep(lambda *x: self._step(*x, valid, cache, span, *args))
            return graphs[span](tok, pos, col, u)

        return replay

    def span(self, column: int, columns: int) -> int:
        """Key columns a step at cache column ``column`` attends over: 64·2^k > column, at most ``columns``
        (compiled or graphed steps: a few fixed shapes), else exactly column + 1."""
        if self.exact_span:
            return column + 1
        blocks = -(-(column + 1) // _COLUMN_ROUND)
        return min(columns, _COLUMN_ROUND * (1 << (blocks - 1).bit_length()))


class _GraphedStep:
    """A decode step captured into a CUDA graph at its first call; later calls copy inputs in and replay.

    The first call runs the step once on a side stream (warm-up: allocator, compiled kernels),
    then captures it; inputs are copied into static buffers, the KV cache and ``valid`` are
    already static (the bucket's own tensors).
    """

    def __init__(self, fn) -> None:
        self.fn, self.graph = fn, None

    def __call__(self, tok, pos, col, u):
        if self.graph is None:
            self.inputs = [t.clone() for t in (tok, pos, col, u)]
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                self.fn(*self.inputs)  # warm-up; the replay below recomputes the same column
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.outputs = self.fn(*self.inputs)
        else:
            for dst, src in zip(self.inputs, (tok, pos, col, u), strict=True):
                dst.copy_(src)
        self.graph.replay()
        return self.outputs
