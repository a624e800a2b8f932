#!/usr/bin/env python3
"""Writes Tests/Fixtures/dpo.h5: the PyTorch fixture for the direct-alignment losses (DPO, IPO).

The policy and the reference are the engine's model in PyTorch (make_parity_fixture.py's
functions, same parameter names and layouts), the reference a perturbed copy of the policy.
Two preference pairs (chosen, rejected) with prompts of different lengths are read by both
models; the fixture stores the summed response log-probabilities, the mean pair loss of DPO
and of IPO, and the gradient of each loss with respect to every policy parameter. The Swift
test (Tests/OverOptTests/DirectAlignmentTests.swift) runs the trainer's loss-and-backward
function on the same weights and sequences and compares.

PyTorch is not a dependency of the build or of CI: the .h5 file is committed.

    python Tests/Fixtures/make_dpo_fixture.py            # writes Tests/Fixtures/dpo.h5

Losses, with h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)):
  DPO  −log σ(β h)          (Rafailov et al. 2023)
  IPO  (h − 1/(2β))²         (Azar et al. 2023)
averaged over the pairs.
"""

import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_parity_fixture as M  # noqa: E402  (the model definition, shared)

SEED = 20241129
BETA = 0.3
REFERENCE_NOISE = 0.05
# Interleaved chosen/rejected sequences: (length, response start = prompt length).
SEQUENCES = [(10, 4), (8, 4), (9, 3), (6, 3)]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dpo.h5")
NAMES = M.TRUNK + M.LM_HEAD


def response_logp(P, tokens, mask):
    """Summed log-probability of each row's response tokens (positions start−1 … length−2)."""
    logits = M.lm_logits(P, M.trunk_forward(P, tokens))
    return M.next_token_logp(logits, tokens, mask).sum(dim=1)


def pair_losses(policy, reference, beta):
    h = (policy[0::2] - reference[0::2]) - (policy[1::2] - reference[1::2])
    return {"dpo": (-F.logsigmoid(beta * h)).mean(), "ipo": ((h - 1 / (2 * beta)) ** 2).mean()}


def main():
    gen = torch.Generator().manual_seed(SEED)
    P = M.init_params(gen)
    R = {n: (P[n].detach() + REFERENCE_NOISE * torch.randn(P[n].shape, generator=gen)) for n in NAMES}
    B, T = len(SEQUENCES), max(n for n, _ in SEQUENCES)
    tokens = torch.full((B, T), M.PAD, dtype=torch.int64)
    mask = torch.zeros(B, T, dtype=torch.float32)
    prompt = torch.randint(1, M.V, (T,), generator=gen)
    for b, (n, start) in enumerate(SEQUENCES):
        tokens[b, :start] = prompt[:start]  # a pair shares its prompt
        tokens[b, start:n] = torch.randint(1, M.V, (n - start,), generator=gen)
        mask[b, start - 1:n - 1] = 1.0
    policy = response_logp(P, tokens, mask)
    with torch.no_grad():
        reference = response_logp(R, tokens, mask)
    losses = pair_losses(policy, reference, BETA)

    with h5py.File(OUT, "w") as f:
        for k, v in dict(V=M.V, maxT=M.MAXT, C=M.C, L=M.L, NH=M.NH, seed=SEED).items():
            f.attrs[k] = np.int64(v)
        f.attrs["beta"] = np.float64(BETA)
        f.attrs["description"] = np.bytes_("DPO/IPO losses and policy gradients of two pairs; see make_dpo_fixture.py")
        for n in NAMES:
            f[f"params_policy/{n}"] = P[n].detach().numpy()
            f[f"params_reference/{n}"] = R[n].numpy()
        f["inputs/tokens"] = tokens.numpy()
        f["inputs/lengths"] = np.array([n for n, _ in SEQUENCES], dtype=np.int64)
        f["inputs/response_start"] = np.array([s for _, s in SEQUENCES], dtype=np.int64)
        f["outputs/policy_logp"] = policy.detach().numpy()
        f["outputs/reference_logp"] = reference.numpy()
        for name, loss in losses.items():
            f[f"outputs/{name}_loss"] = np.array([loss.item()], dtype=np.float64)
            for n, g in M.grads_of(loss, P, NAMES).items():
                f[f"grads_{name}/{n}"] = g.numpy()

    with h5py.File(OUT, "r") as f:
        for name in ("dpo", "ipo"):
            g = np.concatenate([f[f"grads_{name}/{n}"][()].ravel() for n in NAMES])
            assert np.isfinite(g).all() and np.abs(g).max() > 1e-3, name
        print(f"wrote {OUT}: policy logp {f['outputs/policy_logp'][()]}, reference logp {f['outputs/reference_logp'][()]}, "
              f"dpo {f['outputs/dpo_loss'][0]:.6f}, ipo {f['outputs/ipo_loss'][0]:.6f}")


if __name__ == "__main__":
    main()
