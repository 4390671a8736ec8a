"""The dense CRF of `weakclip.core.crf` computed exactly, in batches, on torch tensors (the GPU's boundary loss).

pydensecrf filters with a permutohedral lattice, an approximation of the Gaussian kernels that runs on
the CPU in O(N). On the boundary loss's small grid (64 x 64 = 4096 pixels on the VOC recipe) the kernels
fit as N x N matrices, so the model can be evaluated exactly instead, on the device that holds the
logits, with no copy to the host and no process pool. Same model, same parameters (`CRFParams`):

- features: position (x, y) / sxy for the Gaussian kernel; (x, y) / sxy and (r, g, b) / srgb for the
  bilateral kernel; k(i, j) = exp(-|f_i - f_j|^2 / 2), the pixel itself included (as the lattice does);
- each kernel normalised symmetrically, D^-1/2 K D^-1/2 with D = rowsum(K) (pydensecrf's default
  NORMALIZE_SYMMETRIC), then weighted by its Potts compatibility;
- mean field as pydensecrf's `inference`: Q = softmax(-U); repeat Q = softmax(-U + M Q), U = -log P.

It agrees with pydensecrf up to the lattice's approximation error (tests/test_crf_exact.py measures it).
Memory is O(B N^2): the grids it accepts are capped at MAX_PIXELS.
"""
from __future__ import annotations

import torch

from weakclip.core.crf import CRFParams, crf_params

MAX_PIXELS = 128 * 128  # an N x N fp32 matrix of 1 GiB per image; the loss grid is 64 x 64 (64 MiB)


def _pixel_positions(h: int, w: int, device: torch.device) -> torch.Tensor:
    """(N, 2) float32 pixel coordinates (x, y), row-major like the flattened image."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def _normalised_kernel(features: torch.Tensor) -> torch.Tensor:
    """features (B, N, d) -> D^-1/2 K D^-1/2 (B, N, N), K = exp(-|f_i - f_j|^2 / 2).

    The squared distance is summed one feature at a time (d <= 5): exact in fp32, unlike the matmul
    expansion |a|^2 + |b|^2 - 2ab, which loses digits (and may run in TF32) where the distance is small.
    (torch.cdist without that expansion is exact too, but took 188 ms per call at B=16, N=4096 on an H200.)
    """
    sq = torch.zeros(features.shape[0], features.shape[1], features.shape[1], device=features.device)
    for c in range(features.shape[2]):
        f = features[:, :, c]
        sq += (f[:, :, None] - f[:, None, :]).square_()
    kernel = sq.mul_(-0.5).exp_()
    inv_sqrt_degree = kernel.sum(dim=2).rsqrt()  # (B, N); >= 1 term (the pixel itself), never zero
    return kernel.mul_(inv_sqrt_degree[:, :, None]).mul_(inv_sqrt_degree[:, None, :])


def message_matrix(images: torch.Tensor, params: CRFParams) -> torch.Tensor:
    """images (B, h, w, 3) uint8 -> M (B, N, N) = gauss_compat * G + bilateral_compat * Bil, normalised."""
    B, h, w, _ = images.shape
    pos = _pixel_positions(h, w, images.device)  # (N, 2)
    gauss = _normalised_kernel((pos / params.gauss_sxy)[None])  # (1, N, N): the same for every image
    rgb = images.reshape(B, h * w, 3).float()
    bilateral_features = torch.cat(
        [(pos / params.bilateral_sxy).expand(B, -1, -1), rgb / params.bilateral_srgb], dim=2
    )  # (B, N, 5)
    matrix = _normalised_kernel(bilateral_features).mul_(params.bilateral_compat)
    return matrix.add_(gauss, alpha=params.gauss_compat)


def dense_crf_exact(images: torch.Tensor, probs: torch.Tensor, params: str | CRFParams | dict = "psa"):
    """Mean-field marginals of the dense CRF, computed exactly.

    images: (B, h, w, 3) uint8 RGB; probs: (B, K, h, w) class probabilities (no gradient is taken).
    Returns Q (B, K, h, w) float32 on probs' device. h * w must not exceed MAX_PIXELS.
    """
    p = crf_params(params)
    if images.dim() != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"dense_crf_exact: images must be (B, h, w, 3) uint8, got {tuple(images.shape)} "
                         f"{images.dtype}")
    B, K, h, w = probs.shape
    if images.shape[:3] != (B, h, w):
        raise ValueError(f"dense_crf_exact: probs {tuple(probs.shape)} and images {tuple(images.shape)} differ")
    if h * w > MAX_PIXELS:
        raise ValueError(f"dense_crf_exact: a {h}x{w} grid exceeds {MAX_PIXELS} pixels (O(N^2) memory); "
                         "use weakclip.core.crf.dense_crf (pydensecrf) for full-resolution images")
    with torch.no_grad(), torch.autocast(probs.device.type, enabled=False):
        matrix = message_matrix(images.to(probs.device), p)  # (B, N, N)
        neg_unary = probs.detach().float().clamp(1e-8, 1.0).log().reshape(B, K, h * w).transpose(1, 2)
        q = torch.softmax(neg_unary, dim=2)  # (B, N, K)
        for _ in range(p.iterations):
            q = torch.softmax(torch.baddbmm(neg_unary, matrix, q), dim=2)
        return q.transpose(1, 2).reshape(B, K, h, w).contiguous()
