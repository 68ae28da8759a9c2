"""The N x K work of :func:`~selfdistill.fit_softmax` in torch (``backend="torch"``).

Same contract as the numpy operations in :mod:`selfdistill.solvers` (``direction``,
``trial``, ``grad_change``, ``refresh``): float32 matmuls of differences on the device,
float64 accumulators and element-wise loss, K x r results handed back as float64
numpy arrays so the L-BFGS driver is shared. The loss mirrors
:func:`selfdistill.losses.logit_loss_grad` (theory-derivation.md §1): CE gradient ``(P - T)/N``,
GCE gradient ``(P * s - T * P^q)/N`` with ``s_i = sum_k T_ik P_ik^q``.

Imported only when ``backend="torch"`` is asked for; torch comes with the ``[torch]``
extra.
"""

from __future__ import annotations

import numpy as np

from ._errors import SelfDistillError

__all__ = ["TorchOps", "import_torch", "resolve_device"]


def import_torch():
    """``torch``, or a :class:`SelfDistillError` naming the extra to install."""
    try:
        import torch
    except ImportError:
        raise SelfDistillError(
            "backend='torch' needs PyTorch: pip install 'selfdistill[torch]'"
        ) from None
    return torch


def resolve_device(device: str | None) -> str:
    """``device``, or ``"cuda"`` when available and ``"cpu"`` otherwise."""
    torch = import_torch()
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise SelfDistillError(f"device {device!r} is not usable by torch: {exc}") from None
    return str(device)


class TorchOps:
    """Row-separable N x K work on one torch device (see ``_NumpyOps`` in solvers)."""

    def __init__(self, XV: np.ndarray, dinv_sqrt: np.ndarray, T: np.ndarray, q: float,
                 device: str):
        torch = import_torch()
        self.torch = torch
        self.device = device
        self.N = XV.shape[0]
        self.q = float(q)
        self.XV = torch.as_tensor(XV, dtype=torch.float64, device=device)
        self.dinv = torch.as_tensor(dinv_sqrt, dtype=torch.float64, device=device)
        self.dinv_np = dinv_sqrt
        self.Xs32 = (self.XV * self.dinv).to(torch.float32)
        self.T = torch.as_tensor(T, dtype=torch.float64, device=device)

    def _loss(self, Z):
        torch = self.torch
        N = self.N
        m = Z.amax(dim=1, keepdim=True)
        E = torch.exp(Z - m)
        s = E.sum(dim=1, keepdim=True)
        P = E / s
        if self.q == 0.0:
            value = (torch.log(s).sum() + m.sum() - (self.T * Z).sum()) / N
            return float(value), (P - self.T) / N
        TPq = self.T * P.pow(self.q)
        value = (self.T.sum() - TPq.sum()) / (self.q * N)
        return float(value), (P * TPq.sum(dim=1, keepdim=True) - TPq) / N

    def direction(self, d: np.ndarray):
        """``Xs d^T`` (N, K), float32 matmul, float64 result."""
        d32 = self.torch.as_tensor(d, dtype=self.torch.float32, device=self.device)
        return (self.Xs32 @ d32.T).to(self.torch.float64)

    def trial(self, Z, Zd, t: float):
        """Logits ``Z + t Zd``, data value, ``dZ`` and the slope ``<dZ, Zd>`` there."""
        Zt = Z + t * Zd
        value, dZ = self._loss(Zt)
        return value, float((dZ * Zd).sum()), dZ, Zt

    def direction_trial(self, Z, d: np.ndarray, t: float):
        """``(direction(d), trial(Z, Zd, t))``, the driver's first trial of a step."""
        Zd = self.direction(d)
        return Zd, self.trial(Z, Zd, t)

    def release(self, Zt, dZ) -> None:
        """Nothing to reuse: torch's caching allocator recycles the tensors."""

    def grad_change(self, dZ_new, dZ_old) -> np.ndarray:
        """``(dZ_new - dZ_old)^T Xs`` (K, r), float32 matmul."""
        diff = (dZ_new - dZ_old).to(self.torch.float32)
        return (diff.T @ self.Xs32).to(self.torch.float64).cpu().numpy()

    def start(self, C: np.ndarray):
        """The solver's first point: :meth:`refresh` (exact)."""
        return (*self.refresh(C), True)

    def refresh(self, C: np.ndarray):
        """Exact float64 ``Z``, data value, ``dZ`` and data gradient at ``C``."""
        B = self.torch.as_tensor(C * self.dinv_np, dtype=self.torch.float64,
                                 device=self.device)
        Z = self.XV @ B.T
        value, dZ = self._loss(Z)
        GD = (dZ.T @ self.XV).cpu().numpy() * self.dinv_np
        return Z, value, dZ, GD
