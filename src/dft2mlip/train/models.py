"""MACE model construction, data conversion and the checkpoint format.

The architecture is mace-torch's ``ScaleShiftMACE`` built the way ``mace_run_train`` builds it
(hidden irreps from ``num_channels`` x spherical harmonics up to ``max_L``, residual interaction
blocks, silu gate, ``16x0e`` readout MLP, Bessel radial basis). Everything here works in eV, Å and
eV/Å³ with ASE's tension-positive stress (MACE: σ = -virials / V = (1/V) ∂E/∂ε).

Our checkpoints are plain dictionaries of tensors and JSON-able metadata, so they load with
``torch.load(path, weights_only=True)``; no pickled Python objects are stored.

Note: ``import mace`` must come before anything that imports ``e3nn`` (mace-torch 0.3.16 pins
e3nn 0.4.4, whose import calls ``torch.load`` in a way torch >= 2.6 refuses; importing mace first
sets the environment variable that lets it load). Importing mace sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the process: always pass ``weights_only`` explicitly.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import ase
import mace  # must precede e3nn (see module docstring)
import numpy as np
import torch
from e3nn import o3
from mace import data as mace_data
from mace import modules as mace_modules
from mace.tools import torch_geometric
from mace.tools.utils import AtomicNumberTable

from dft2mlip.io import atomic_write

#: ASE info/arrays keys of the DFT labels (dataset contract) mapped to MACE's property names
LABEL_KEYS = {"energy": "REF_energy", "forces": "REF_forces", "stress": "REF_stress"}
#: model_cfg keys build_model requires (config.yaml ``model:``)
MODEL_KEYS = (
    "r_max_A",
    "num_channels",
    "max_L",
    "max_ell",
    "correlation",
    "num_interactions",
    "num_radial_basis",
    "num_polynomial_cutoff",
)
#: architecture choices fixed to mace_run_train's defaults
_INTERACTION = "RealAgnosticResidualInteractionBlock"
_GATE = "silu"
_MLP_IRREPS = "16x0e"
_RADIAL_MLP = [64, 64, 64]
_RADIAL_TYPE = "bessel"
CHECKPOINT_FORMAT = "dft2mlip-mace-checkpoint-v1"
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(dtype: str) -> torch.dtype:
    """Return the torch dtype for ``"float32"`` or ``"float64"`` (training.dtype)."""
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(
            f"unknown dtype {dtype!r} (training.dtype); use one of {sorted(_DTYPES)}"
        ) from None


@contextlib.contextmanager
def default_dtype(dtype: str) -> Iterator[None]:
    """Temporarily set torch's global default dtype; the previous one is always restored."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def hidden_irreps(num_channels: int, max_L: int) -> o3.Irreps:
    """Hidden irreps ``num_channels x (0e + 1o + ... L)``, as mace_run_train builds them."""
    if num_channels < 1 or max_L < 0:
        raise ValueError(
            f"model.num_channels must be >= 1 and model.max_L >= 0, got {num_channels}, {max_L}"
        )
    return o3.Irreps((num_channels * o3.Irreps.spherical_harmonics(max_L)).sort().irreps.simplify())


def check_model_cfg(model_cfg: dict) -> None:
    """Raise ValueError naming the ``model:`` keys that are missing."""
    missing = [k for k in MODEL_KEYS if k not in model_cfg]
    if missing:
        raise ValueError(
            f"model config lacks {missing}; set them under model: in the config "
            f"(required keys: {list(MODEL_KEYS)})"
        )


def build_model(
    model_cfg: dict,
    atomic_numbers: list[int],
    e0s: dict[int, float],
    avg_num_neighbors: float,
    dtype: str,
    *,
    scale: float = 1.0,
    shift: float = 0.0,
) -> torch.nn.Module:
    """Build a mace-torch ``ScaleShiftMACE`` from the ``model:`` config keys.

    Parameters
    ----------
    model_cfg : dict
        ``r_max_A`` (Å), ``num_channels``, ``max_L``, ``max_ell``, ``correlation``,
        ``num_interactions``, ``num_radial_basis``, ``num_polynomial_cutoff``.
    atomic_numbers : list[int]
        Elements the model knows (sorted on use).
    e0s : dict[int, float]
        Isolated-atom reference energies (eV) per atomic number, e.g. from :func:`fit_e0s`.
    avg_num_neighbors : float
        Mean number of neighbours within ``r_max_A`` in the training set.
    dtype : str
        ``"float32"`` or ``"float64"``; the model's parameters get this dtype. torch's global
        default dtype is restored afterwards.
    scale, shift : float
        Interaction-energy scale (eV, e.g. RMS force component) and per-atom shift (eV).

    Returns
    -------
    torch.nn.Module
        The model; call it as ``model(batch.to_dict(), compute_force=True, compute_stress=True)``
        or use :func:`predict`.
    """
    check_model_cfg(model_cfg)
    zs = sorted(int(z) for z in atomic_numbers)
    missing = [z for z in zs if z not in e0s and str(z) not in e0s]
    if missing:
        raise ValueError(f"no E0 given for atomic numbers {missing}")
    e0_array = np.array([float(e0s.get(z, e0s.get(str(z)))) for z in zs])
    with default_dtype(dtype):
        model = mace_modules.ScaleShiftMACE(
            r_max=float(model_cfg["r_max_A"]),
            num_bessel=int(model_cfg["num_radial_basis"]),
            num_polynomial_cutoff=int(model_cfg["num_polynomial_cutoff"]),
            max_ell=int(model_cfg["max_ell"]),
            interaction_cls=mace_modules.interaction_classes[_INTERACTION],
            interaction_cls_first=mace_modules.interaction_classes[_INTERACTION],
            num_interactions=int(model_cfg["num_interactions"]),
            num_elements=len(zs),
            hidden_irreps=hidden_irreps(int(model_cfg["num_channels"]), int(model_cfg["max_L"])),
            MLP_irreps=o3.Irreps(_MLP_IRREPS),
            atomic_energies=e0_array,
            avg_num_neighbors=float(avg_num_neighbors),
            atomic_numbers=zs,
            correlation=int(model_cfg["correlation"]),
            gate=mace_modules.gate_dict[_GATE],
            radial_MLP=list(_RADIAL_MLP),
            radial_type=_RADIAL_TYPE,
            atomic_inter_scale=float(scale),
            atomic_inter_shift=float(shift),
        )
    return model.to(torch_dtype(dtype))


# --------------------------------------------------------------------------------------------
# data


def _key_specification(with_labels: bool) -> mace_data.KeySpecification:
    if not with_labels:
        return mace_data.KeySpecification()
    return mace_data.KeySpecification(
        info_keys={"energy": LABEL_KEYS["energy"], "stress": LABEL_KEYS["stress"]},
        arrays_keys={"forces": LABEL_KEYS["forces"]},
    )


def atoms_to_configs(
    atoms_list: Sequence[ase.Atoms], *, with_labels: bool = True, source: str = "dataset"
) -> list[mace_data.Configuration]:
    """Convert ASE Atoms carrying ``REF_energy``/``REF_forces``/``REF_stress`` to MACE configs.

    A structure without ``REF_stress`` gets stress weight 0 (masked in the loss); every structure
    must have ``REF_energy`` and ``REF_forces`` when ``with_labels`` is true.
    """
    if with_labels:
        for i, atoms in enumerate(atoms_list):
            if LABEL_KEYS["energy"] not in atoms.info or LABEL_KEYS["forces"] not in atoms.arrays:
                sid = atoms.info.get("structure_id", "?")
                raise ValueError(
                    f"{source}: frame {i} (structure_id {sid}) lacks REF_energy or REF_forces; "
                    "only labels with status 'ok' belong in a training/validation file"
                )
    return mace_data.config_from_atoms_list(
        list(atoms_list), key_specification=_key_specification(with_labels)
    )


def has_stress_labels(atoms_list: Sequence[ase.Atoms]) -> bool:
    """True when at least one structure carries ``REF_stress``."""
    return any(LABEL_KEYS["stress"] in atoms.info for atoms in atoms_list)


def fit_e0s(
    configs: Sequence[mace_data.Configuration], atomic_numbers: list[int]
) -> dict[int, float]:
    """Per-element reference energies (eV) by least squares of total energy on composition."""
    table = AtomicNumberTable(sorted(int(z) for z in atomic_numbers))
    e0s = mace_data.compute_average_E0s(list(configs), table)
    return {int(z): float(e) for z, e in e0s.items()}


def configs_to_data(
    configs: Sequence[mace_data.Configuration],
    atomic_numbers: list[int],
    r_max: float,
    dtype: str,
) -> list[mace_data.AtomicData]:
    """Build MACE graphs (neighbour lists within ``r_max`` Å) in the given dtype."""
    table = AtomicNumberTable(sorted(int(z) for z in atomic_numbers))
    unknown = sorted({int(z) for c in configs for z in c.atomic_numbers} - set(table.zs))
    if unknown:
        raise ValueError(
            f"structures contain elements {unknown} the model was not built for ({table.zs})"
        )
    with default_dtype(dtype):
        return [mace_data.AtomicData.from_config(c, z_table=table, cutoff=r_max) for c in configs]


def collate(data_list: Sequence[mace_data.AtomicData]) -> torch_geometric.Batch:
    """The batch ``torch_geometric.Batch.from_data_list`` builds, with one ``torch.cat`` per key.

    MACE's generic collation walks every key of every graph in Python; for the small graphs of a
    DFT training set that is a few per cent of an epoch. Graphs whose attributes are not all
    tensors of the same keys (or carry index keys other than ``edge_index``) fall back to MACE's
    own collation. ``edge_index`` is offset by the cumulative node counts, 0-d tensors are
    stacked, the rest is concatenated along dimension 0 (as MACE's ``AtomicData`` defines).
    """
    data_list = list(data_list)
    keys = data_list[0].keys
    items = {k: [d[k] for d in data_list] for k in keys}
    if any(
        ("index" in k and k != "edge_index")
        or "face" in k
        or not all(isinstance(v, torch.Tensor) for v in values)
        for k, values in items.items()
    ) or any(d.keys != keys for d in data_list[1:]):
        return torch_geometric.Batch.from_data_list(data_list)
    n_nodes = [int(d.num_nodes) for d in data_list]
    out = {}
    for key, values in items.items():
        if key == "edge_index":
            offsets = np.concatenate([[0], np.cumsum(n_nodes)[:-1]])
            out[key] = torch.cat([v + int(o) for v, o in zip(values, offsets, strict=True)], -1)
        elif values[0].dim() == 0:
            out[key] = torch.stack(values)
        else:
            out[key] = torch.cat(values, 0)
    counts = torch.tensor(n_nodes, dtype=torch.long)
    batch = torch_geometric.Batch(
        batch=torch.repeat_interleave(torch.arange(len(data_list)), counts),
        ptr=torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)]),
        **out,
    )
    batch.__num_graphs__ = len(data_list)
    batch.__data_class__ = data_list[0].__class__
    return batch.contiguous()


def make_loader(
    data: Sequence[mace_data.AtomicData],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int | None = None,
) -> torch.utils.data.DataLoader:
    """A DataLoader of MACE batches (:func:`collate`); shuffling uses its own generator seeded
    with ``seed`` (the same sampler, hence the same batches, as MACE's DataLoader)."""
    generator = None
    if shuffle:
        generator = torch.Generator()
        generator.manual_seed(0 if seed is None else int(seed))
    return torch.utils.data.DataLoader(
        list(data),
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=False,
        generator=generator,
        collate_fn=collate,
    )


def data_statistics(
    loader: torch_geometric.DataLoader, e0s: dict[int, float], atomic_numbers: list[int]
) -> dict[str, float]:
    """Average neighbour count, mean interaction energy per atom (eV) and RMS force (eV/Å).

    Used as ``avg_num_neighbors``, ``shift`` and ``scale`` of :func:`build_model`, as in MACE's
    ``rms_forces_scaling``.
    """
    zs = sorted(int(z) for z in atomic_numbers)
    e0_array = torch.tensor([e0s[z] for z in zs], dtype=torch.float64)
    n_neigh, e_inter, forces = [], [], []
    for batch in loader:
        n_neigh.append(torch.bincount(batch.edge_index[1], minlength=batch.num_nodes))
        node_e0 = batch.node_attrs.to(torch.float64) @ e0_array
        graph_e0 = torch.zeros(batch.num_graphs, dtype=torch.float64).index_add_(
            0, batch.batch, node_e0
        )
        n_atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(torch.float64)
        e_inter.append((batch.energy.to(torch.float64) - graph_e0) / n_atoms)
        forces.append(batch.forces.to(torch.float64).reshape(-1))
    rms_f = float(torch.sqrt(torch.mean(torch.cat(forces) ** 2)))
    return {
        "avg_num_neighbors": float(torch.cat(n_neigh).to(torch.float64).mean()),
        "shift": float(torch.cat(e_inter).mean()),
        # all-zero forces (e.g. perfect crystals only) would make the model output zero
        "scale": rms_f if rms_f > 1e-8 else 1.0,
    }


# --------------------------------------------------------------------------------------------
# evaluation


def voigt_from_matrix(stress: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) stress tensors -> (n, 6) ASE Voigt ``[xx, yy, zz, yz, xz, xy]``."""
    return torch.stack(
        [
            stress[:, 0, 0],
            stress[:, 1, 1],
            stress[:, 2, 2],
            stress[:, 1, 2],
            stress[:, 0, 2],
            stress[:, 0, 1],
        ],
        dim=1,
    )


def to_device(batch: Any, device: torch.device | str | None) -> Any:
    """``batch.to(device)``, skipped when the batch is already there.

    The loaders build batches on the CPU, and MACE's ``Batch.to`` walks every key in Python even
    when nothing moves: 0.7 ms a batch of four 8-atom cells (about 1 % of a CPU training epoch of
    the default model), and one such walk per step of MD with the ASE calculator.
    """
    if device is None or batch.positions.device == torch.device(device):
        return batch
    return batch.to(device)


def predict(
    model: torch.nn.Module, batch: Any, *, training: bool, compute_stress: bool = True
) -> dict[str, torch.Tensor]:
    """Energy (eV, per graph), forces (eV/Å) and stress (eV/Å³, (n, 6) Voigt, tension positive).

    Forces and stress are derivatives of the energy (MACE's strain trick). ``training=True``
    keeps the graph for a backward pass through the forces; evaluation needs no ``no_grad``
    removal of position gradients, so never wrap this in ``torch.no_grad()``.
    """
    out = model(
        batch.to_dict(),
        training=training,
        compute_force=True,
        compute_stress=compute_stress,
    )
    result = {"energy": out["energy"], "forces": out["forces"]}
    if compute_stress:
        result["stress"] = voigt_from_matrix(out["stress"])
    return result


# --------------------------------------------------------------------------------------------
# checkpoints


def model_metadata(
    model_cfg: dict,
    atomic_numbers: list[int],
    e0s: dict[int, float],
    avg_num_neighbors: float,
    dtype: str,
    scale: float,
    shift: float,
) -> dict[str, Any]:
    """JSON-able description from which :func:`build_model` rebuilds the architecture."""
    check_model_cfg(model_cfg)
    return {
        "architecture": "ScaleShiftMACE",
        "mace_version": mace.__version__,
        "model_cfg": {k: model_cfg[k] for k in MODEL_KEYS},
        "atomic_numbers": sorted(int(z) for z in atomic_numbers),
        "e0s_eV": {str(int(z)): float(e) for z, e in e0s.items()},
        "avg_num_neighbors": float(avg_num_neighbors),
        "r_max_A": float(model_cfg["r_max_A"]),
        "dtype": dtype,
        "scale_eV": float(scale),
        "shift_eV": float(shift),
    }


def model_from_metadata(metadata: dict[str, Any]) -> torch.nn.Module:
    """Rebuild an (untrained) model from :func:`model_metadata` output."""
    return build_model(
        metadata["model_cfg"],
        metadata["atomic_numbers"],
        {int(z): float(e) for z, e in metadata["e0s_eV"].items()},
        metadata["avg_num_neighbors"],
        metadata["dtype"],
        scale=metadata["scale_eV"],
        shift=metadata["shift_eV"],
    )


def plain(obj: Any) -> Any:
    """JSON round trip: plain dicts/lists/str/float/int/bool/None that ``weights_only`` loads.

    Raises TypeError for values JSON cannot represent (say what to convert)."""
    return json.loads(json.dumps(obj))


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    metadata: dict[str, Any],
    **training_state: Any,
) -> None:
    """Write ``{format, metadata, model_state, **training_state}`` atomically with torch.save.

    ``training_state`` values must be tensors, plain Python containers or numbers so the file
    loads with ``weights_only=True``.
    """
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "metadata": plain(metadata),
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        **training_state,
    }
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
