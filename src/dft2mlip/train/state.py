"""The whole training state of a run, and the one object that writes and reads ``last.pt``.

:class:`TrainingState` holds the live training objects (model, optimiser, learning-rate
schedule, parameter EMA, weighting scheme, the shuffling generator) and the bookkeeping of the
loop (epoch, history rows, best epoch and its checkpoint, epochs since the best one, the
accumulator of batch-interval weight updates, the normalisation references). Its
:meth:`TrainingState.save` is the only writer of the resume file; :meth:`TrainingState.read`
and :meth:`TrainingState.restore` bring a run back so that it continues exactly (bit for bit
on CPU). The file holds tensors and plain containers only: it loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dft2mlip.io import atomic_write
from dft2mlip.train.loss import COMPONENTS
from dft2mlip.train.weighting import WeightingScheme

log = logging.getLogger(__name__)

#: format tag of ``last.pt``
RESUME_FORMAT = "dft2mlip-training-state-v1"


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(loader_generator: torch.Generator | None) -> dict[str, Any]:
    """Every RNG the loop draws from (torch, NumPy, Python, the loader's, CUDA), as tensors and
    plain values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "loader": None if loader_generator is None else loader_generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: Mapping[str, Any], loader_generator: torch.Generator | None) -> None:
    """Put back what :func:`rng_state` recorded."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ParameterEMA:
    """Exponential moving average of parameters (as ``torch_ema`` and MACE's ``--ema``).

    shadow ← d · shadow + (1 − d) · param after every optimiser step, with the warm-up
    d = min(decay, (1 + n) / (10 + n)) over the number of updates n.
    """

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        """One averaging step (after an optimiser step)."""
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Temporarily put the averaged values into the parameters."""
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for b, p in zip(backup, self.params, strict=True):
                    p.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        """Decay, number of updates and the averaged values (on CPU)."""
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": [s.detach().cpu().clone() for s in self.shadow],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (values moved to the parameters' device and dtype)."""
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.shadow = [
            s.to(device=p.device, dtype=p.dtype)
            for s, p in zip(state["shadow"], self.params, strict=True)
        ]


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    factor: float,
    patience: int,
    min_lr: float,
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """The per-epoch learning-rate schedule ``training.lr_scheduler`` (None for ``none``).

    ``plateau``: ReduceLROnPlateau on the validation score (× ``factor`` after ``patience``
    epochs without improvement, not below ``min_lr``); ``cosine``: cosine annealing from
    ``lr`` to ``min_lr`` over ``epochs``. The values are checked by
    :class:`dft2mlip.train.settings.TrainingSettings`.
    """
    if name == "none":
        return None
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=factor, patience=patience, min_lr=min_lr
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(epochs, 1), eta_min=min_lr
        )
    raise ValueError(f"training.lr_scheduler = {name!r}; use none, plateau or cosine")


def save_payload(path: Path, payload: dict) -> None:
    """``torch.save`` atomically: an interrupted write keeps the previous file."""
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


def fresh_interval_acc() -> dict[str, Any]:
    """Empty accumulator of the losses between two batch-interval weight updates."""
    return {"sums": {k: 0.0 for k in COMPONENTS}, "counts": {k: 0.0 for k in COMPONENTS}, "n": 0}


@dataclasses.dataclass
class TrainingState:
    """Everything a run needs to continue exactly where it stopped.

    Attributes
    ----------
    model, optimizer, scheduler, ema, weighting, loader_generator
        The live objects of the loop (``scheduler`` and ``ema`` may be None).
    normalise : str
        ``initial`` or ``none``; ``refs`` holds L_k^ref per weighted component.
    epoch : int
        Last finished epoch (0 before the first).
    history : list of dict
        One history.csv row per finished epoch.
    best : dict
        ``epoch``, ``score`` and ``val`` (history units) of the best validation score so far.
    best_checkpoint : dict or None
        The ``model.pt`` payload of the best epoch.
    since_best : int
        Epochs since the best one (early stopping).
    interval_acc : dict
        Losses accumulated since the last batch-interval weight update.
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema: ParameterEMA | None
    weighting: WeightingScheme
    loader_generator: torch.Generator | None
    normalise: str
    refs: dict[str, float]
    epoch: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    best: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"epoch": None, "score": math.inf, "val": None}
    )
    best_checkpoint: dict[str, Any] | None = None
    since_best: int = 0
    interval_acc: dict[str, Any] = dataclasses.field(default_factory=fresh_interval_acc)

    def state_dict(self) -> dict[str, Any]:
        """The resume payload (tensors and plain containers; no format tag or fingerprint)."""
        return {
            "epoch": self.epoch,
            "model_state": {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            },
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "weighting": self.weighting.state_dict(),
            "normalisation": {"mode": self.normalise, "refs": dict(self.refs)},
            "rng": rng_state(self.loader_generator),
            "history": self.history,
            "best": self.best,
            "best_checkpoint": self.best_checkpoint,
            "since_best": self.since_best,
            "interval_acc": self.interval_acc,
        }

    def restore(self, payload: Mapping[str, Any]) -> None:
        """Load a payload of :meth:`state_dict` into the live objects, RNGs included."""
        self.model.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(payload["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(payload["ema"])
        self.weighting.load_state_dict(payload["weighting"])
        self.refs = {k: float(v) for k, v in payload["normalisation"]["refs"].items()}
        self.history = [dict(r) for r in payload["history"]]
        self.best = dict(payload["best"])
        self.best_checkpoint = payload["best_checkpoint"]
        self.since_best = int(payload["since_best"])
        self.interval_acc = payload["interval_acc"]
        self.epoch = int(payload["epoch"])
        restore_rng(payload["rng"], self.loader_generator)

    def save(self, path: Path, fingerprint: str) -> None:
        """Write the resume file (atomically; the only writer of ``last.pt``)."""
        save_payload(
            path, {"format": RESUME_FORMAT, "fingerprint": fingerprint, **self.state_dict()}
        )

    @staticmethod
    def read(path: Path, fingerprint: str, run_name: str) -> dict[str, Any] | None:
        """The payload in ``path`` when it belongs to this run, else None: no file yet (a first
        start), or a stale, foreign or unreadable one (removed). Loads with
        ``weights_only=True``."""
        if not path.exists():
            return None
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a truncated file is just not resumable
            log.warning("run %s: cannot read %s (%s); starting afresh", run_name, path, err)
            path.unlink(missing_ok=True)
            return None
        if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
            log.warning(
                "run %s: %s is not a dft2mlip training state; starting afresh", run_name, path
            )
            path.unlink(missing_ok=True)
            return None
        if payload.get("fingerprint") != fingerprint:
            log.warning(
                "run %s: %s was written with other data or settings; starting afresh",
                run_name,
                path,
            )
            path.unlink(missing_ok=True)
            return None
        return payload
