#!/usr/bin/env python3
"""PyTorch reference timings for `overopt bench` (the `large` preset, vocab 256, CPU).

What this is: the same GPT-2-style model as the Swift engine (pre-LN, fused QKV, GELU tanh,
untied LM head, learned positions), written with PyTorch's fastest CPU building blocks, timing
  (a) one training step: forward + LM loss + backward + AdamW, batch 64 x 64 tokens;
  (b) batched sampling with its own KV cache: 256 sequences, 16-token prompt, 48 new tokens.
It reports medians over --repeats runs after warm-up, as a table or (--json) one JSON object.

What this is not: a dependency of OverOpt. PyTorch is used only here and in the fixture script.

    python bench/torch_reference.py --threads 2 --repeats 5 [--json]

Dimensions: B batch, T time, C channels, V vocab, L layers, NH heads, hs = C/NH.
"""

import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# The `large` preset with vocab 256.
V, MAXT, C, L, NH = 256, 64, 128, 4, 4
HS = C // NH
LN_EPS = 1e-5

TRAIN_B, TRAIN_T = 64, 64
SAMPLE_B, PROMPT_T, NEW_T = 256, 16, 48
LR, BETAS, EPS, WEIGHT_DECAY = 3e-4, (0.9, 0.95), 1e-8, 0.1

# FLOP count used by both this script and `overopt bench` (keep them identical):
#   N_matmul        = L * (3C*C + C*C + 4C*C + 4C*C) + V*C
#                     (weights of every matmul: qkv, attn proj, fc, mlp proj, lm_head;
#                      embeddings, biases and LayerNorm excluded)
#   flops_per_token = 6 * N_matmul + 6 * L * T * C      with T = 64
#                     (6N: forward 2N + backward 4N; 6*L*T*C approximates causal attention
#                      forward + backward)
#   train_gflops    = flops_per_token * B * T / step_seconds / 1e9     with B = T = 64
N_MATMUL = L * (3 * C * C + C * C + 4 * C * C + 4 * C * C) + V * C
FLOPS_PER_TOKEN = 6 * N_MATMUL + 6 * L * TRAIN_T * C


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------
# Parameters (same names as the Swift engine and Tests/Fixtures/make_parity_fixture.py)

def init_params(gen):
    """GPT-2 init: N(0, 0.02) weights, zero biases, unit LayerNorm weights,
    residual projections N(0, 0.02/sqrt(2L))."""
    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    resid_std = 0.02 / math.sqrt(2 * L)
    P = {"wte": normal((V, C), 0.02), "wpe": normal((MAXT, C), 0.02)}
    for l in range(L):
        p = f"h{l}."
        P[p + "ln1_w"], P[p + "ln1_b"] = torch.ones(C), torch.zeros(C)
        P[p + "qkv_w"], P[p + "qkv_b"] = normal((3 * C, C), 0.02), torch.zeros(3 * C)
        P[p + "attn_proj_w"], P[p + "attn_proj_b"] = normal((C, C), resid_std), torch.zeros(C)
        P[p + "ln2_w"], P[p + "ln2_b"] = torch.ones(C), torch.zeros(C)
        P[p + "fc_w"], P[p + "fc_b"] = normal((4 * C, C), 0.02), torch.zeros(4 * C)
        P[p + "mlp_proj_w"], P[p + "mlp_proj_b"] = normal((C, 4 * C), resid_std), torch.zeros(C)
    P["lnf_w"], P["lnf_b"] = torch.ones(C), torch.zeros(C)
    P["lm_head_w"] = normal((V, C), 0.02)
    return {n: t.float().contiguous() for n, t in P.items()}


# ----------------------------------------------------------------------------------------
# Full forward (training)

def block_forward(P, l, x, attend):
    """x (B,T,C) -> (B,T,C). `attend(q, k, v)` maps (B,NH,T,hs) queries/keys/values to (B,NH,T,hs)."""
    p = f"h{l}."
    Bx, Tx, _ = x.shape
    a = F.layer_norm(x, (C,), P[p + "ln1_w"], P[p + "ln1_b"], LN_EPS)
    q, k, v = F.linear(a, P[p + "qkv_w"], P[p + "qkv_b"]).split(C, dim=2)
    q, k, v = (t.view(Bx, Tx, NH, HS).transpose(1, 2) for t in (q, k, v))
    y = attend(q, k, v).transpose(1, 2).reshape(Bx, Tx, C)
    x = x + F.linear(y, P[p + "attn_proj_w"], P[p + "attn_proj_b"])
    a = F.layer_norm(x, (C,), P[p + "ln2_w"], P[p + "ln2_b"], LN_EPS)
    u = F.gelu(F.linear(a, P[p + "fc_w"], P[p + "fc_b"]), approximate="tanh")
    return x + F.linear(u, P[p + "mlp_proj_w"], P[p + "mlp_proj_b"])


def forward(P, tokens):
    """tokens (B,T) -> logits (B,T,V)."""
    Tx = tokens.shape[1]
    x = P["wte"][tokens] + P["wpe"][:Tx]
    causal = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)
    for l in range(L):
        x = block_forward(P, l, x, causal)
    x = F.layer_norm(x, (C,), P["lnf_w"], P["lnf_b"], LN_EPS)
    return F.linear(x, P["lm_head_w"])


def lm_loss(logits, tokens):
    # loss_mask is 1 on positions 0..T-2 and 0 on T-1: mean CE of predicting tokens[:, t+1].
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))


# ----------------------------------------------------------------------------------------
# Incremental decoding with a KV cache

class KVCache:
    """Per layer, K and V of shape (B, NH, maxT, hs); positions [0, length) are filled."""

    def __init__(self, batch):
        self.k = [torch.empty(batch, NH, MAXT, HS) for _ in range(L)]
        self.v = [torch.empty(batch, NH, MAXT, HS) for _ in range(L)]
        self.length = 0


def forward_cached(P, tokens, cache):
    """Appends tokens (B,t) at positions [cache.length, cache.length + t) and returns the
    logits (B,V) of the last of them. The prompt goes in one call, then one token per call."""
    Bx, t = tokens.shape
    p0 = cache.length
    x = P["wte"][tokens] + P["wpe"][p0:p0 + t]

    for l in range(L):
        def attend(q, k, v, l=l):
            cache.k[l][:, :, p0:p0 + t] = k
            cache.v[l][:, :, p0:p0 + t] = v
            K, Vc = cache.k[l][:, :, :p0 + t], cache.v[l][:, :, :p0 + t]
            if t == 1:  # one new query attends to every cached position
                return F.scaled_dot_product_attention(q, K, Vc)
            if p0 == 0:  # prefill: plain causal attention
                return F.scaled_dot_product_attention(q, K, Vc, is_causal=True)
            mask = torch.ones(t, p0 + t, dtype=torch.bool).tril(diagonal=p0)
            return F.scaled_dot_product_attention(q, K, Vc, attn_mask=mask)
        x = block_forward(P, l, x, attend)

    cache.length = p0 + t
    x = F.layer_norm(x[:, -1], (C,), P["lnf_w"], P["lnf_b"], LN_EPS)
    return F.linear(x, P["lm_head_w"])


@torch.inference_mode()
def sample(P, prompts, new_tokens, gen, temperature=1.0, record=None):
    """prompts (B,Tp) -> (B, Tp + new_tokens). One prefill call, then one call per new token
    except the last (whose successor is never needed). `record` collects the logits used."""
    cache = KVCache(prompts.shape[0])
    out = [prompts]
    logits = forward_cached(P, prompts, cache)
    for i in range(new_tokens):
        if record is not None:
            record.append(logits.clone())
        probs = F.softmax(logits / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=gen)
        out.append(nxt)
        if i + 1 < new_tokens:
            logits = forward_cached(P, nxt, cache)
    return torch.cat(out, dim=1)


@torch.inference_mode()
def check_kv_cache(P, gen):
    """The cached path's logits must equal a full forward pass on the same prefix."""
    prompts = torch.randint(0, V, (8, PROMPT_T), generator=gen)
    record = []
    seqs = sample(P, prompts, NEW_T, gen, record=record)
    full = forward(P, seqs)  # (8, 64, V)
    cached = torch.stack(record, dim=1)  # (8, NEW_T, V): logits at positions PROMPT_T-1 .. 62
    ref = full[:, PROMPT_T - 1:PROMPT_T - 1 + NEW_T]
    err = (cached - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= 1e-4 * max(1.0, scale), f"KV-cache logits differ from full forward: {err}"
    return err, scale


# ----------------------------------------------------------------------------------------

def median_seconds(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (default 5)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before timing (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    P = init_params(gen)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, large preset "
        f"V={V} maxT={MAXT} C={C} L={L} NH={NH}, {sum(t.numel() for t in P.values())} parameters")

    err, scale = check_kv_cache(P, gen)
    log(f"KV-cache check: max |logits_cached - logits_full| = {err:.3g} (max |logits| {scale:.3g}) OK")

    # (a) training step.
    params = [t.requires_grad_(True) for t in P.values()]
    decay = [t for t in params if t.dim() == 2]
    no_decay = [t for t in params if t.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS)
    train_tokens = torch.randint(0, V, (TRAIN_B, TRAIN_T), generator=gen)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = lm_loss(forward(P, train_tokens), train_tokens)
        loss.backward()
        opt.step()
        return loss

    t_train, train_times = median_seconds(train_step, args.repeats, args.warmup)

    # (b) batched sampling with the KV cache (prefill included in the time).
    for t in params:
        t.requires_grad_(False)
    prompts = torch.randint(0, V, (SAMPLE_B, PROMPT_T), generator=gen)
    t_sample, sample_times = median_seconds(lambda: sample(P, prompts, NEW_T, gen), args.repeats, args.warmup)

    train_tps = TRAIN_B * TRAIN_T / t_train
    result = {
        "impl": "pytorch",
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "train_tokens_per_s": round(train_tps, 1),
        "train_gflops": round(FLOPS_PER_TOKEN * train_tps / 1e9, 2),
        "train_step_ms_median": round(t_train * 1e3, 2),
        "sample_tokens_per_s": round(SAMPLE_B * NEW_T / t_sample, 1),
        "sample_ms_median": round(t_sample * 1e3, 2),
        "repeats": args.repeats,
    }

    spread = lambda ts: f"{min(ts) * 1e3:.1f}..{max(ts) * 1e3:.1f} ms"
    table = "\n".join([
        f"{'benchmark':44s} {'median':>10s} {'throughput':>16s}   range",
        f"{'(a) train step 64x64, fwd+bwd+AdamW':44s} {t_train * 1e3:8.1f}ms "
        f"{train_tps:9.0f} tok/s   {spread(train_times)}   {result['train_gflops']:.1f} GFLOP/s",
        f"{'(b) sample 256 x (16 prompt + 48 new), KV':44s} {t_sample * 1e3:8.1f}ms "
        f"{result['sample_tokens_per_s']:9.0f} tok/s   {spread(sample_times)}",
        f"flops_per_token = 6*{N_MATMUL} + 6*{L}*{TRAIN_T}*{C} = {FLOPS_PER_TOKEN}",
    ])
    if args.json:
        log(table)
        print(json.dumps(result))
    else:
        print(table)


if __name__ == "__main__":
    main()
