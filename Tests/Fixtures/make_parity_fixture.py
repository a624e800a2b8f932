#!/usr/bin/env python3
"""Writes Tests/Fixtures/parity.h5: the PyTorch parity fixture for the OverOpt engine.

What this is: a tiny GPT-2-style model built from plain tensors with exactly the parameter
names the Swift engine uses, random (large, std 0.3) weights so that every path is exercised,
one right-padded batch, and every quantity the Swift parity test compares: logits, LM loss,
summed response log-probs, per-token log-probs and entropy, final hidden states, both reward
heads, the value head, the gradients of four losses, five AdamW steps and global-norm clipping.

What this is not: part of the build. PyTorch is never a runtime or CI dependency; the .h5 file
is committed and the Swift tests only read it. Re-run this script only when the model changes:

    python Tests/Fixtures/make_parity_fixture.py            # writes Tests/Fixtures/parity.h5

Dimensions: B batch, T time, C channels, V vocab, L layers, NH heads, hs = C/NH head size,
Hh hidden width of the MLP reward head. All tensors are float32; Linear weights are (out, in)
and y = x W^T + b.
"""

import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

SEED = 20240611

# Model and batch configuration (stored as root attributes).
V, MAXT, C, L, NH, HH = 37, 12, 16, 2, 2, 8
B, T = 3, 10
LENGTHS = [10, 7, 4]
PAD = 0
LN_EPS = 1e-5

# AdamW settings for the 5-step check (stored as root attributes).
LR, BETA1, BETA2, EPS, WEIGHT_DECAY = 1e-2, 0.9, 0.95, 1e-8, 0.1
ADAMW_STEPS = 5
CLIP_MAX_NORM = 0.5

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "parity.h5")


# ----------------------------------------------------------------------------------------
# Parameters

def trunk_shapes():
    """Ordered (name, shape) of the trunk: embeddings, blocks, final LayerNorm."""
    s = [("wte", (V, C)), ("wpe", (MAXT, C))]
    for l in range(L):
        p = f"h{l}."
        s += [
            (p + "ln1_w", (C,)), (p + "ln1_b", (C,)),
            (p + "qkv_w", (3 * C, C)), (p + "qkv_b", (3 * C,)),
            (p + "attn_proj_w", (C, C)), (p + "attn_proj_b", (C,)),
            (p + "ln2_w", (C,)), (p + "ln2_b", (C,)),
            (p + "fc_w", (4 * C, C)), (p + "fc_b", (4 * C,)),
            (p + "mlp_proj_w", (C, 4 * C)), (p + "mlp_proj_b", (C,)),
        ]
    s += [("lnf_w", (C,)), ("lnf_b", (C,))]
    return s


TRUNK = [n for n, _ in trunk_shapes()]
LM_HEAD = ["lm_head_w"]
RH_LINEAR = ["rh_w", "rh_b"]
RH_MLP = ["rh_fc_w", "rh_fc_b", "rh_out_w", "rh_out_b"]
VALUE_HEAD = ["vh_w", "vh_b"]


def all_shapes():
    return trunk_shapes() + [
        ("lm_head_w", (V, C)),
        ("rh_w", (1, C)), ("rh_b", (1,)),
        ("rh_fc_w", (HH, C)), ("rh_fc_b", (HH,)), ("rh_out_w", (1, HH)), ("rh_out_b", (1,)),
        ("vh_w", (1, C)), ("vh_b", (1,)),
    ]


def is_layernorm(name):
    return name.split(".")[-1] in ("ln1_w", "ln1_b", "ln2_w", "ln2_b", "lnf_w", "lnf_b")


def init_params(gen):
    """Large random weights so every path matters: std 0.3 for weights and biases,
    LayerNorm weights 1 + 0.1 N(0,1), LayerNorm biases 0.1 N(0,1)."""
    params = {}
    for name, shape in all_shapes():
        z = torch.randn(shape, generator=gen, dtype=torch.float32)
        leaf = name.split(".")[-1]
        if is_layernorm(name) and leaf.endswith("_w"):
            t = 1.0 + 0.1 * z
        elif is_layernorm(name):
            t = 0.1 * z
        else:
            t = 0.3 * z
        params[name] = t.requires_grad_(True)
    return params


# ----------------------------------------------------------------------------------------
# Model (plain functions, same order as the Swift engine)

def layernorm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, LN_EPS)


def attention(x, qkv_w, qkv_b, proj_w, proj_b):
    # x (B,T,C) -> (B,T,C). qkv (B,T,3C): q = [0:C], k = [C:2C], v = [2C:3C];
    # head h uses columns [h*hs:(h+1)*hs] of each.
    Bx, Tx, Cx = x.shape
    hs = Cx // NH
    qkv = F.linear(x, qkv_w, qkv_b)
    q, k, v = qkv.split(Cx, dim=2)
    q = q.view(Bx, Tx, NH, hs).transpose(1, 2)  # (B,NH,T,hs)
    k = k.view(Bx, Tx, NH, hs).transpose(1, 2)
    v = v.view(Bx, Tx, NH, hs).transpose(1, 2)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B,NH,T,T)
    causal = torch.ones(Tx, Tx, dtype=torch.bool).tril()
    att = att.masked_fill(~causal, float("-inf"))
    att = F.softmax(att, dim=-1)
    y = att @ v  # (B,NH,T,hs)
    y = y.transpose(1, 2).contiguous().view(Bx, Tx, Cx)
    return F.linear(y, proj_w, proj_b)


def mlp(x, fc_w, fc_b, proj_w, proj_b):
    return F.linear(F.gelu(F.linear(x, fc_w, fc_b), approximate="tanh"), proj_w, proj_b)


def trunk_forward(P, tokens):
    """tokens (B,T) int64 -> final hidden states after lnf, (B,T,C)."""
    Tx = tokens.shape[1]
    x = P["wte"][tokens] + P["wpe"][torch.arange(Tx)]
    for l in range(L):
        p = f"h{l}."
        x = x + attention(layernorm(x, P[p + "ln1_w"], P[p + "ln1_b"]),
                          P[p + "qkv_w"], P[p + "qkv_b"], P[p + "attn_proj_w"], P[p + "attn_proj_b"])
        x = x + mlp(layernorm(x, P[p + "ln2_w"], P[p + "ln2_b"]),
                    P[p + "fc_w"], P[p + "fc_b"], P[p + "mlp_proj_w"], P[p + "mlp_proj_b"])
    return layernorm(x, P["lnf_w"], P["lnf_b"])


def lm_logits(P, h):
    return h @ P["lm_head_w"].t()  # (B,T,V), untied, no bias


def next_token_logp(logits, tokens, loss_mask):
    """log softmax(logits[b,t])[tokens[b,t+1]] * mask[b,t]; position T-1 has mask 0."""
    logp = F.log_softmax(logits, dim=-1)  # (B,T,V)
    targets = torch.roll(tokens, shifts=-1, dims=1)  # targets[b,t] = tokens[b,t+1] (t<T-1)
    tok_logp = logp.gather(2, targets.unsqueeze(-1)).squeeze(-1)  # (B,T)
    return tok_logp * loss_mask


def lm_loss(logits, tokens, loss_mask):
    return -next_token_logp(logits, tokens, loss_mask).sum() / loss_mask.sum()


def last_hidden(h, lengths):
    """h (B,T,C) -> (B,C) at the last non-padding token of each sequence."""
    return h[torch.arange(h.shape[0]), lengths - 1]


def reward_linear(P, h, lengths):
    return (last_hidden(h, lengths) @ P["rh_w"].t() + P["rh_b"]).squeeze(-1)  # (B,)


def reward_mlp(P, h, lengths):
    z = F.relu(F.linear(last_hidden(h, lengths), P["rh_fc_w"], P["rh_fc_b"]))
    return F.linear(z, P["rh_out_w"], P["rh_out_b"]).squeeze(-1)  # (B,)


def value_head(P, h):
    return (h @ P["vh_w"].t() + P["vh_b"]).squeeze(-1)  # (B,T)


def bradley_terry_loss(r):
    # Sequence 1 is the "rejected" one in both pairs: (0 preferred over 1), (2 preferred over 1).
    return -F.logsigmoid(r[0] - r[1]) - F.logsigmoid(r[2] - r[1])


def value_loss(values, target, mask):
    return 0.5 * (((values - target) ** 2) * mask).sum() / mask.sum()


def grads_of(loss, P, names):
    gs = torch.autograd.grad(loss, [P[n] for n in names], allow_unused=True, retain_graph=True)
    return {n: (torch.zeros_like(P[n]) if g is None else g).detach() for n, g in zip(names, gs)}


# ----------------------------------------------------------------------------------------
# Inputs

def make_inputs(gen):
    lengths = torch.tensor(LENGTHS, dtype=torch.int64)
    tokens = torch.full((B, T), PAD, dtype=torch.int64)
    loss_mask = torch.zeros(B, T, dtype=torch.float32)
    for b, n in enumerate(LENGTHS):
        tokens[b, :n] = torch.randint(1, V, (n,), generator=gen)
        loss_mask[b, 2:n - 1] = 1.0  # positions 2..len-2: predictions of tokens 3..len-1
    value_target = torch.randn(B, T, generator=gen, dtype=torch.float32)
    return tokens, loss_mask, lengths, value_target


# ----------------------------------------------------------------------------------------

def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    P = init_params(gen)
    tokens, loss_mask, lengths, value_target = make_inputs(gen)
    lm_names = TRUNK + LM_HEAD

    # Forward outputs.
    h = trunk_forward(P, tokens)
    logits = lm_logits(P, h)
    loss = lm_loss(logits, tokens, loss_mask)
    tok_logp = next_token_logp(logits, tokens, loss_mask)
    logp_sum = tok_logp.sum(dim=1)
    logp_all = F.log_softmax(logits, dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(dim=-1)  # (B,T), every position
    r_lin = reward_linear(P, h, lengths)
    r_mlp = reward_mlp(P, h, lengths)
    values = value_head(P, h)

    # Gradients of the four losses.
    g_lm = grads_of(loss, P, lm_names)
    g_rw = grads_of(bradley_terry_loss(r_lin), P, TRUNK + RH_LINEAR + LM_HEAD)
    g_rw_mlp = grads_of(bradley_terry_loss(r_mlp), P, TRUNK + RH_MLP)
    g_val = grads_of(value_loss(values, value_target, loss_mask), P, TRUNK + VALUE_HEAD)

    # Global-norm clipping (same gradient as g_lm, clipped by torch's own routine).
    clip_params = [torch.nn.Parameter(P[n].detach().clone()) for n in lm_names]
    for p, n in zip(clip_params, lm_names):
        p.grad = g_lm[n].clone()
    clip_norm = torch.nn.utils.clip_grad_norm_(clip_params, CLIP_MAX_NORM)
    clipped = {n: p.grad.detach().clone() for n, p in zip(lm_names, clip_params)}

    # Five AdamW steps on the LM loss, decay on 2-D parameters only.
    Q = {n: torch.nn.Parameter(P[n].detach().clone()) for n in lm_names}
    decay = [Q[n] for n in lm_names if Q[n].dim() == 2]
    no_decay = [Q[n] for n in lm_names if Q[n].dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=(BETA1, BETA2), eps=EPS)
    adam_losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad(set_to_none=True)
        l_step = lm_loss(lm_logits(Q, trunk_forward(Q, tokens)), tokens, loss_mask)
        adam_losses.append(l_step.item())
        l_step.backward()
        opt.step()
    params_after = {n: Q[n].detach().clone() for n in lm_names}

    # Write.
    def f32(t):
        return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))

    def put(f, path, arr):
        f.create_dataset(path, data=arr, track_times=False)

    tmp = OUT + ".tmp"
    with h5py.File(tmp, "w", track_order=True) as f:
        for k, v in dict(V=V, maxT=MAXT, C=C, L=L, NH=NH, Hh=HH, B=B, T=T).items():
            f.attrs[k] = np.int64(v)
        for k, v in dict(lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS, weight_decay=WEIGHT_DECAY).items():
            f.attrs[k] = np.float64(v)
        f.attrs["description"] = np.bytes_(
            "OverOpt parity fixture written by Tests/Fixtures/make_parity_fixture.py with PyTorch "
            f"{torch.__version__}, seed {SEED}, float32. GPT-2-style pre-LN model, untied lm_head, "
            "GELU tanh, LayerNorm eps 1e-5. Batch right-padded with 0; loss_mask marks positions whose "
            "next-token prediction counts. Reward loss: -logsigmoid(r[0]-r[1]) - logsigmoid(r[2]-r[1]). "
            "Value loss: 0.5*mean over masked positions of (value-target)^2. AdamW: decay on 2-D params "
            "only, losses recorded before each step. clip: torch clip_grad_norm_ "
            "(coef = max_norm/(norm+1e-6), clamped to 1), max_norm 0.5. entropy is stored at every position. "
            "CAUTION: the key third of qkv_b (entries [C:2C]) has a mathematically zero gradient (softmax "
            "is shift-invariant); its float32 gradient is rounding noise (~1e-8), which AdamW amplifies to "
            "updates of up to lr per step, so adamw/params_after/h*.qkv_b[C:2C] is not reproducible across "
            "implementations and must be skipped (the AdamW losses are unaffected).")
        f.attrs["seed"] = np.int64(SEED)
        f.attrs["clip_max_norm"] = np.float64(CLIP_MAX_NORM)

        for n, _ in all_shapes():
            put(f, f"params/{n}", f32(P[n]))
        put(f, "inputs/tokens", tokens.numpy().astype(np.int64))
        put(f, "inputs/loss_mask", f32(loss_mask))
        put(f, "inputs/lengths", lengths.numpy().astype(np.int64))
        put(f, "inputs/value_target", f32(value_target))

        put(f, "outputs/logits", f32(logits))
        put(f, "outputs/lm_loss", f32(loss.reshape(1)))
        put(f, "outputs/logp_sum", f32(logp_sum))
        put(f, "outputs/token_logp", f32(tok_logp))
        put(f, "outputs/entropy", f32(entropy))
        put(f, "outputs/hidden_final", f32(h))
        put(f, "outputs/reward_linear", f32(r_lin))
        put(f, "outputs/reward_mlp", f32(r_mlp))
        put(f, "outputs/value", f32(values))

        for group, gs in (("grads_lm", g_lm), ("grads_reward", g_rw),
                          ("grads_reward_mlp", g_rw_mlp), ("grads_value", g_val)):
            for n, g in gs.items():
                put(f, f"{group}/{n}", f32(g))

        put(f, "adamw/losses", np.asarray(adam_losses, dtype=np.float32))
        for n, t in params_after.items():
            put(f, f"adamw/params_after/{n}", f32(t))

        put(f, "clip/norm", f32(clip_norm.reshape(1)))
        for n, g in clipped.items():
            put(f, f"clip/grads/{n}", f32(g))
    os.replace(tmp, OUT)

    verify(OUT)


# ----------------------------------------------------------------------------------------
# Verification: re-read the file, check shapes and finiteness, print a summary.

def expected_shapes():
    shapes = {}
    ps = dict(all_shapes())
    for n, s in ps.items():
        shapes[f"params/{n}"] = s
    shapes.update({
        "inputs/tokens": (B, T), "inputs/loss_mask": (B, T), "inputs/lengths": (B,),
        "inputs/value_target": (B, T),
        "outputs/logits": (B, T, V), "outputs/lm_loss": (1,), "outputs/logp_sum": (B,),
        "outputs/token_logp": (B, T), "outputs/entropy": (B, T), "outputs/hidden_final": (B, T, C),
        "outputs/reward_linear": (B,), "outputs/reward_mlp": (B,), "outputs/value": (B, T),
        "adamw/losses": (ADAMW_STEPS,), "clip/norm": (1,),
    })
    for group, names in (("grads_lm", TRUNK + LM_HEAD), ("grads_reward", TRUNK + RH_LINEAR + LM_HEAD),
                         ("grads_reward_mlp", TRUNK + RH_MLP), ("grads_value", TRUNK + VALUE_HEAD),
                         ("adamw/params_after", TRUNK + LM_HEAD), ("clip/grads", TRUNK + LM_HEAD)):
        for n in names:
            shapes[f"{group}/{n}"] = ps[n]
    return shapes


def verify(path):
    want = expected_shapes()
    seen = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: seen.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        attrs = dict(f.attrs)
    problems = []
    for name, shape in want.items():
        if name not in seen:
            problems.append(f"missing {name}")
        elif seen[name].shape != tuple(shape):
            problems.append(f"{name}: shape {seen[name].shape} != {tuple(shape)}")
        elif not np.all(np.isfinite(seen[name])):
            problems.append(f"{name}: non-finite values")
        elif name.startswith("inputs/tokens") or name.startswith("inputs/lengths"):
            if seen[name].dtype != np.int64:
                problems.append(f"{name}: dtype {seen[name].dtype}")
        elif seen[name].dtype != np.float32:
            problems.append(f"{name}: dtype {seen[name].dtype}")
    extra = sorted(set(seen) - set(want))
    if extra:
        problems.append(f"unexpected datasets: {extra}")

    # Sanity checks on content.
    mask = seen["inputs/loss_mask"]
    tok = seen["inputs/tokens"]
    if mask[:, -1].any():
        problems.append("loss_mask has 1 at position T-1")
    for b, n in enumerate(seen["inputs/lengths"]):
        if (tok[b, n:] != PAD).any() or (tok[b, :n] == PAD).any():
            problems.append(f"padding of sequence {b} is wrong")
    if not np.allclose(seen["outputs/logp_sum"], seen["outputs/token_logp"].sum(1), atol=1e-5):
        problems.append("logp_sum != sum of token_logp")
    lm = -seen["outputs/token_logp"].sum() / mask.sum()
    if abs(lm - seen["outputs/lm_loss"][0]) > 1e-5:
        problems.append("lm_loss inconsistent with token_logp")
    if abs(seen["adamw/losses"][0] - seen["outputs/lm_loss"][0]) > 1e-5:
        problems.append("first AdamW loss != lm_loss")
    if not seen["clip/norm"][0] > CLIP_MAX_NORM:
        problems.append("gradient norm below max_norm: clipping would be a no-op")
    for n in LM_HEAD:
        if np.any(seen[f"grads_reward/{n}"] != 0):
            problems.append("grads_reward/lm_head_w is not zero")

    size = os.path.getsize(path)
    print(f"wrote {path} ({size / 1024:.1f} KiB, {len(seen)} datasets)")
    print("attributes: " + ", ".join(f"{k}={attrs[k]}" for k in
                                     ("V", "maxT", "C", "L", "NH", "Hh", "B", "T", "lr", "beta1",
                                      "beta2", "eps", "weight_decay")))
    print(f"tokens:\n{tok}")
    print(f"loss_mask positions per sequence: {mask.sum(1).astype(int).tolist()}")
    print(f"lm_loss      {seen['outputs/lm_loss'][0]:.6f}")
    print(f"logp_sum     {np.array2string(seen['outputs/logp_sum'], precision=5)}")
    print(f"reward_lin   {np.array2string(seen['outputs/reward_linear'], precision=5)}")
    print(f"reward_mlp   {np.array2string(seen['outputs/reward_mlp'], precision=5)}")
    print(f"entropy mean {seen['outputs/entropy'].mean():.5f}")
    print(f"adamw losses {np.array2string(seen['adamw/losses'], precision=6)}")
    print(f"clip norm    {seen['clip/norm'][0]:.6f} (max_norm {CLIP_MAX_NORM})")
    for group in ("grads_lm", "grads_reward", "grads_reward_mlp", "grads_value"):
        names = [k for k in seen if k.startswith(group + "/")]
        mx = max(float(np.abs(seen[k]).max()) for k in names)
        print(f"{group:17s} {len(names):3d} tensors, max |g| {mx:.4g}")
    print("note: adamw/params_after/h*.qkv_b[C:2C] (key bias) is rounding noise amplified by AdamW; "
          "parity tests must skip it")
    if size >= 1 << 20:
        problems.append(f"file is {size} bytes, want < 1 MiB")
    if problems:
        print("VERIFY FAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("verify: OK")


if __name__ == "__main__":
    main()
