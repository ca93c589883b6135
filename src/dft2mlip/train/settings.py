"""The training settings shared by every run: one validated object.

:class:`TrainingSettings` is the only place where the defaults and the range checks of the
``training:`` keys live. The schema (``workflow/schemas/config.schema.yaml``) repeats the
defaults and the types for the documentation (a test keeps them equal), and
:func:`dft2mlip.config.check_config` builds this object, so a bad value is refused at
``snakemake -n`` with the key's name, ``training.<key>``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

#: learning-rate schedules (``training.lr_scheduler``)
LR_SCHEDULERS = ("none", "plateau", "cosine")
#: model precisions (``training.dtype``)
DTYPES = ("float32", "float64")
#: ``training:`` keys that belong to the study, not to one training run
STUDY_LEVEL_KEYS = ("runs", "seeds", "reference_run")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?)$")


def _fail(key: str, value: Any, rule: str) -> None:
    raise ValueError(f"training.{key} = {value!r}: {rule} (see training: in config/README.md)")


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Settings of the training loop (``training:`` minus ``runs``, ``seeds``, ``reference_run``).

    Attributes
    ----------
    epochs : int
        Maximum number of epochs (>= 1).
    batch_size : int
        Structures per batch (>= 1).
    lr : float
        Adam learning rate (> 0).
    dtype : str
        ``float64`` or ``float32`` (model parameters and graphs).
    device : str
        ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    lr_scheduler : str
        ``none``, ``plateau`` (× ``lr_factor`` after ``lr_patience`` epochs without a better
        validation score) or ``cosine`` (from ``lr`` to ``min_lr`` over ``epochs``).
    lr_factor : float
        Plateau factor in (0, 1).
    lr_patience : int
        Plateau patience in epochs (>= 0).
    min_lr : float
        Lowest learning rate of either schedule (>= 0).
    ema_decay : float
        Decay of the exponential moving average of the parameters in [0, 1); 0 = off. On by
        default (0.99, MACE's value; bench/results/ema.json).
    early_stopping_patience : int
        Stop after this many epochs without a better validation score; 0 = never.
    clip_grad_norm : float
        Gradient-norm clipping threshold (MACE's default 10); 0 = off.
    """

    epochs: int = 60
    batch_size: int = 4
    lr: float = 0.01
    dtype: str = "float64"
    device: str = "auto"
    lr_scheduler: str = "plateau"
    lr_factor: float = 0.8
    lr_patience: int = 5
    min_lr: float = 1e-4
    ema_decay: float = 0.99
    early_stopping_patience: int = 0
    clip_grad_norm: float = 10.0

    def __post_init__(self) -> None:
        self._check_types()
        if self.epochs < 1:
            _fail("epochs", self.epochs, "must be >= 1")
        if self.batch_size < 1:
            _fail("batch_size", self.batch_size, "must be >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            _fail("lr", self.lr, "must be a finite number > 0")
        if self.dtype not in DTYPES:
            _fail("dtype", self.dtype, f"use one of {list(DTYPES)}")
        if not _DEVICE.match(self.device):
            _fail("device", self.device, "not a torch device; use auto, cpu, cuda or cuda:N")
        if self.lr_scheduler not in LR_SCHEDULERS:
            _fail("lr_scheduler", self.lr_scheduler, f"use one of {list(LR_SCHEDULERS)}")
        if not 0 < self.lr_factor < 1:
            _fail("lr_factor", self.lr_factor, "must lie in (0, 1)")
        if self.lr_patience < 0:
            _fail("lr_patience", self.lr_patience, "must be >= 0")
        if not (math.isfinite(self.min_lr) and self.min_lr >= 0):
            _fail("min_lr", self.min_lr, "must be >= 0")
        if not 0 <= self.ema_decay < 1:
            _fail("ema_decay", self.ema_decay, "use a value in [0, 1) (0 = off)")
        if self.early_stopping_patience < 0:
            _fail("early_stopping_patience", self.early_stopping_patience, "must be >= 0 (0 = off)")
        if not (math.isfinite(self.clip_grad_norm) and self.clip_grad_norm >= 0):
            _fail("clip_grad_norm", self.clip_grad_norm, "must be >= 0 (0 = off)")

    def _check_types(self) -> None:
        """Coerce ints given as whole floats and numbers given as ints; refuse the rest."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            want = type(field.default)
            if want is float and isinstance(value, int | float) and not isinstance(value, bool):
                object.__setattr__(self, field.name, float(value))
            elif want is int and isinstance(value, int) and not isinstance(value, bool):
                continue
            elif want is str and isinstance(value, str):
                continue
            else:
                _fail(field.name, value, f"must be of type {want.__name__}")

    @classmethod
    def from_config(cls, training: Mapping[str, Any]) -> TrainingSettings:
        """The settings of a ``training:`` section (study-level keys are ignored).

        Raises
        ------
        ValueError
            An unknown key or a value out of range, naming ``training.<key>``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in training.items() if k not in STUDY_LEVEL_KEYS}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"training.{unknown[0]} is not a training setting (known: {sorted(known)})"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrainingSettings:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain dictionary of every setting."""
        return dataclasses.asdict(self)

    def result_defining(self) -> dict[str, Any]:
        """The settings that determine the trained model (all but the device)."""
        return {k: v for k, v in self.as_dict().items() if k != "device"}
