"""Deformation MD: spec validation, exact strain schedule, stress signs, snapshots, validation."""

from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read
from ase.units import GPa

from dft2mlip.validate.deform import (
    DeformationSpec,
    deformation_gradient,
    plot_stress_strain,
    run_deformation_md,
    select_snapshots,
    stress_validation,
    stress_validation_summary,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
A_CU = 3.59  # close to the EMT equilibrium lattice constant (3.590 Å)


def _spec(**overrides):
    cfg = {
        "mode": "uniaxial",
        "direction": "x",
        "repeat": [2, 2, 2],
        "temperature_K": 20.0,
        "timestep_fs": 2.0,
        "strain_rate_per_ps": 0.5,
        "max_strain": 0.03,
        "friction_per_fs": 0.02,
        "snapshots": 3,
    }
    cfg.update(overrides)
    return DeformationSpec.from_config(cfg)


def _cell(spec):
    return bulk("Cu", "fcc", a=A_CU, cubic=True).repeat(spec.repeat)


@pytest.fixture(scope="module")
def tension(tmp_path_factory):
    out = tmp_path_factory.mktemp("tension")
    spec = _spec()
    df = run_deformation_md(_cell(spec), EMT(), spec, 11, out / "md.extxyz", out / "md.csv")
    return spec, df, out


@pytest.fixture(scope="module")
def compression(tmp_path_factory):
    out = tmp_path_factory.mktemp("compression")
    spec = _spec(strain_rate_per_ps=-0.5, direction="y")
    df = run_deformation_md(_cell(spec), EMT(), spec, 12, out / "md.extxyz", out / "md.csv")
    return spec, df, out


def test_default_config_spec():
    md = yaml.safe_load(CONFIG.read_text())["validation"]["md"]
    spec = DeformationSpec.from_config(md)
    # n_steps = max_strain / (rate * dt) = 0.04 / (0.05/ps * 0.002 ps)
    expected = round(md["max_strain"] / (md["strain_rate_per_ps"] * md["timestep_fs"] * 1e-3))
    assert spec.n_steps == expected
    assert 100 <= spec.n_steps // spec.record_every + 1 <= 201


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"timestep_fs": 8.0}, r"validation\.md\.timestep_fs = 8 fs is above 5 fs"),
        ({"timestep_fs": 0.0}, r"validation\.md\.timestep_fs"),
        ({"mode": "twist"}, r"validation\.md\.mode = 'twist' is not supported"),
        ({"direction": "w"}, r"validation\.md\.direction = 'w'"),
        ({"mode": "shear"}, r"validation\.md\.direction = 'x' is not valid for .*'shear'.*xy"),
        ({"direction": "xy"}, r"validation\.md\.direction = 'xy' is not valid .*'uniaxial'"),
        ({"lateral": "free"}, r"validation\.md\.lateral = 'free'"),
        (
            {"mode": "shear", "direction": "xy", "lateral": "relaxed"},
            r"validation\.md\.lateral = 'relaxed' applies to mode 'uniaxial' only",
        ),
        ({"lateral": "relaxed", "barostat_time_ps": 0.005}, r"validation\.md\.barostat_time_ps"),
        ({"barostat_modulus_GPa": -1.0}, r"validation\.md\.barostat_modulus_GPa"),
        ({"strain_rate_per_ps": -0.6}, r"validation\.md\.strain_rate_per_ps .* above 0\.001"),
        ({"strain_rate_per_ps": 0}, r"validation\.md\.strain_rate_per_ps = 0"),
        ({"strain_rate_per_ps": 1.0}, r"validation\.md\.strain_rate_per_ps .* above 0\.001"),
        ({"max_strain": 0.6}, r"validation\.md\.max_strain = 0\.6"),
        ({"repeat": [1, 0, 1]}, r"validation\.md\.repeat"),
        ({"snapshots": 0}, r"validation\.md\.snapshots"),
        ({"friction_per_fs": 0.0}, r"validation\.md\.friction_per_fs"),
        ({"temperature_K": "hot"}, r"validation\.md\.temperature_K = 'hot' must be a number"),
        ({"strain_rate": 0.1}, r"validation\.md has unknown key\(s\) strain_rate"),
    ],
)
def test_spec_rejects_bad_values_naming_the_key(override, pattern):
    with pytest.raises(ValueError, match=pattern):
        _spec(**override)


def test_missing_key_is_named():
    cfg = {"mode": "uniaxial", "direction": "x"}
    with pytest.raises(ValueError, match="missing key.*timestep_fs"):
        DeformationSpec.from_config(cfg)


def test_uniaxial_gradient_changes_only_the_pulled_axis():
    f = deformation_gradient("uniaxial", "z", 0.02)
    np.testing.assert_array_equal(f, np.diag([1.0, 1.0, 1.02]))


def test_cell_follows_schedule_exactly(tension):
    spec, df, out = tension
    frames = read(out / "md.extxyz", index=":")
    assert len(frames) == len(df) and df["step"].iloc[-1] == spec.n_steps
    cell0 = np.diag([2 * A_CU] * 3)
    rate_per_fs = spec.strain_rate_per_ps * 1e-3
    for frame, row in zip(frames, df.itertuples(), strict=True):
        t_fs = row.step * spec.timestep_fs
        expected = cell0 @ np.diag([1.0 + rate_per_fs * t_fs, 1.0, 1.0])
        np.testing.assert_allclose(frame.cell.array, expected, atol=1e-12)
        assert frame.info["md_strain"] == pytest.approx(rate_per_fs * t_fs, abs=1e-15)
        assert frame.info["md_step"] == row.step
        assert frame.info["md_time_ps"] == pytest.approx(t_fs * 1e-3)
    np.testing.assert_allclose(df["cell_length_a_A"], 2 * A_CU * (1 + df["strain"]), atol=1e-12)
    np.testing.assert_allclose(df["cell_length_b_A"], 2 * A_CU, atol=1e-12)
    assert df["strain"].iloc[-1] == pytest.approx(spec.max_strain)


def _static_stress_gpa(spec, strain):
    atoms = _cell(spec)
    atoms.set_cell(
        atoms.cell.array @ deformation_gradient("uniaxial", spec.direction, strain),
        scale_atoms=True,
    )
    atoms.calc = EMT()
    return atoms.get_stress(voigt=True) / GPa


def test_tension_gives_positive_stress_close_to_static(tension):
    spec, df, _ = tension
    final = df.iloc[-1]
    assert final["stress_virial_xx_GPa"] > 1.0
    assert final["stress_virial_xx_GPa"] > final["stress_virial_yy_GPa"] > 0
    # at 20 K the MD stress stays near the static stress of the perfect strained lattice
    static = _static_stress_gpa(spec, final["strain"])
    assert final["stress_virial_xx_GPa"] == pytest.approx(static[0], abs=0.3)


def test_compression_gives_negative_stress(compression):
    spec, df, _ = compression
    final = df.iloc[-1]
    assert final["strain"] == pytest.approx(-spec.max_strain)
    assert final["stress_virial_yy_GPa"] < -1.0
    static = _static_stress_gpa(spec, final["strain"])
    assert final["stress_virial_yy_GPa"] == pytest.approx(static[1], abs=0.3)
    assert final["cell_length_b_A"] == pytest.approx(2 * A_CU * (1 - spec.max_strain))


def test_kinetic_stress_is_minus_momentum_flux(tension):
    """Total - virial on the diagonal averages to -2 KE / (3 V): thermal pressure is compressive."""
    _, df, _ = tension
    kin = (
        df[[f"stress_total_{c}_GPa" for c in ("xx", "yy", "zz")]].to_numpy()
        - df[[f"stress_virial_{c}_GPa" for c in ("xx", "yy", "zz")]].to_numpy()
    )
    expected = -2 * df["kinetic_energy_eV"] / (3 * df["volume_A3"]) / GPa
    np.testing.assert_allclose(kin.mean(axis=1), expected, rtol=1e-9, atol=1e-12)
    assert (expected < 0).all()


def test_same_seed_reproduces(tmp_path, tension):
    spec, df, _ = tension
    again = run_deformation_md(
        _cell(spec), EMT(), spec, 11, tmp_path / "a.extxyz", tmp_path / "a.csv"
    )
    pd.testing.assert_frame_equal(again, df)
    assert pd.read_csv(tmp_path / "a.csv").shape == df.shape


@pytest.mark.parametrize("case", ["tension", "compression"])
def test_select_snapshots_evenly_spaced_in_strain(case, request):
    spec, df, out = request.getfixturevalue(case)
    snaps = select_snapshots(out / "md.extxyz", 3)
    strains = np.array([s.info["md_strain"] for s in snaps])
    assert len(snaps) == 3
    assert np.all(np.diff(np.abs(strains)) > 0) and np.all(strains != 0)
    assert strains[-1] == df["strain"].iloc[-1]  # the final frame is included
    step = abs(df["strain"].diff().iloc[1])
    np.testing.assert_allclose(strains, df["strain"].iloc[-1] * np.arange(1, 4) / 3, atol=step)
    for k, s in enumerate(snaps):
        assert s.info["structure_id"] == f"md-snap-{k:02d}"
        assert s.info["config_type"] == "md_snapshot"
        assert s.calc is None and "momenta" not in s.arrays
        # one k-point mesh for the path: the unstrained MD cell's, which every frame carries
        np.testing.assert_allclose(s.info["reference_cell"], _cell(spec).cell.array)
    for frame in ase.io.read(out / "md.extxyz", index=":"):
        np.testing.assert_allclose(frame.info["reference_cell"], _cell(spec).cell.array)
    with pytest.raises(ValueError, match="cannot pick 500 distinct"):
        select_snapshots(out / "md.extxyz", 500)


def test_stress_validation_reports_errors_and_missing(tmp_path, tension):
    spec, _, out = tension
    snaps = select_snapshots(out / "md.extxyz", 3)
    offset_gpa = np.array([0.2, -0.1, 0.0, 0.05, 0.0, 0.0])
    labelled = []
    for i, s in enumerate(reversed(snaps)):  # order of the input does not matter
        a = s.copy()
        if i == 0:
            a.info["status"] = "scf_not_converged"
        else:
            a.info["status"] = "ok"
            a.info["REF_stress"] = _static(s) - offset_gpa * GPa
        labelled.append(a)
    df = stress_validation(labelled, EMT())
    assert list(df["structure_id"]) == ["md-snap-00", "md-snap-01", "md-snap-02"]
    assert df.loc[2, "status"] == "scf_not_converged" and np.isnan(df.loc[2, "dft_stress_xx_GPa"])
    np.testing.assert_allclose(df.loc[:1, "abs_error_xx_GPa"], 0.2, atol=1e-9)
    summary = stress_validation_summary(df)
    assert summary["n_ok"] == 2 and summary["missing"] == ["md-snap-02 (scf_not_converged)"]
    assert summary["mae_xx_GPa"] == pytest.approx(0.2)
    assert summary["max_error_yz_GPa"] == pytest.approx(0.05)
    assert summary["mae_GPa"] == pytest.approx(np.abs(offset_gpa).mean())
    assert np.isfinite(df["model_stress_xx_GPa"]).all()
    png = plot_stress_strain(out / "md.csv", tmp_path / "ss.png", df, component="xx")
    assert png.stat().st_size > 1000


def _static(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_stress(voigt=True)


# ----------------------------------------------------------------------------- modes


def test_gradients_of_every_mode():
    np.testing.assert_array_equal(
        deformation_gradient("shear", "xz", 0.02),
        [[1.0, 0.0, 0.01], [0.0, 1.0, 0.0], [0.01, 0.0, 1.0]],
    )
    np.testing.assert_array_equal(deformation_gradient("hydrostatic", "y", -0.01), 0.99 * np.eye(3))
    with pytest.raises(ValueError, match="direction 'x' is not valid for mode 'shear'"):
        deformation_gradient("shear", "x", 0.01)


def _run(tmp_path, name, seed, **overrides):
    spec = _spec(**overrides)
    df = run_deformation_md(
        _cell(spec), EMT(), spec, seed, tmp_path / f"{name}.extxyz", tmp_path / f"{name}.csv"
    )
    return spec, df, read(tmp_path / f"{name}.extxyz", index=":")


def test_pure_shear_follows_schedule_and_gives_positive_shear_stress(tmp_path):
    spec, df, frames = _run(tmp_path, "shear", 3, mode="shear", direction="xy")
    assert spec.component == "xy"
    length = 2 * A_CU
    for frame, row in zip(frames, df.itertuples(), strict=True):
        gamma = spec.strain_rate_per_ps * row.step * spec.timestep_fs * 1e-3
        expected = length * np.array([[1, gamma / 2, 0], [gamma / 2, 1, 0], [0, 0, 1]])
        np.testing.assert_allclose(frame.cell.array, expected, atol=1e-12)
    final = df.iloc[-1]
    assert final["strain"] == pytest.approx(spec.max_strain)
    # positive engineering shear gives positive sigma_xy: C44 * gamma, near the static value
    static = _static_stress_gpa_for(spec, final["strain"])
    assert final["stress_virial_xy_GPa"] > 0.5
    assert final["stress_virial_xy_GPa"] == pytest.approx(static[5], abs=0.3)


def test_hydrostatic_compression_is_isotropic_and_compressive(tmp_path):
    spec, df, frames = _run(
        tmp_path, "hydro", 4, mode="hydrostatic", direction="z", strain_rate_per_ps=-0.5
    )
    assert spec.component == "zz"
    final = df.iloc[-1]
    np.testing.assert_allclose(
        frames[-1].cell.array, 2 * A_CU * (1 - spec.max_strain) * np.eye(3), atol=1e-12
    )
    diag = final[[f"stress_virial_{c}_GPa" for c in ("xx", "yy", "zz")]].to_numpy(float)
    assert np.all(diag < -3.0)  # 3 B * strain: about -12 GPa for EMT Cu at -3 %
    assert np.ptp(diag) < 0.1 * abs(diag.mean())
    assert final["volume_A3"] == pytest.approx((2 * A_CU * (1 - spec.max_strain)) ** 3)


def _static_stress_gpa_for(spec, strain):
    atoms = _cell(spec)
    f = deformation_gradient(spec.mode, spec.direction, strain)
    atoms.set_cell(atoms.cell.array @ f.T, scale_atoms=True)
    atoms.calc = EMT()
    return atoms.get_stress(voigt=True) / GPa


@pytest.fixture(scope="module")
def lateral_pair(tmp_path_factory):
    """The same slow uniaxial tension with fixed and with relaxed lateral cell lengths."""
    out = tmp_path_factory.mktemp("lateral")
    common = {
        "strain_rate_per_ps": 0.1,
        "max_strain": 0.02,
        "barostat_time_ps": 0.05,
        "barostat_modulus_GPa": 150.0,
    }
    runs = {}
    for lateral in ("fixed", "relaxed"):
        spec = _spec(lateral=lateral, **common)
        df = run_deformation_md(
            _cell(spec), EMT(), spec, 5, out / f"{lateral}.extxyz", out / f"{lateral}.csv"
        )
        runs[lateral] = (spec, df)
    return runs


def test_relaxed_lateral_boundary_gives_uniaxial_stress(lateral_pair):
    spec, fixed = lateral_pair["fixed"]
    _, relaxed = lateral_pair["relaxed"]
    # the loading axis follows the schedule exactly in both
    for df in (fixed, relaxed):
        np.testing.assert_allclose(df["cell_length_a_A"], 2 * A_CU * (1 + df["strain"]), atol=1e-12)
    late = slice(int(0.6 * len(fixed)), None)
    lat_fixed = fixed[["stress_total_yy_GPa", "stress_total_zz_GPa"]].iloc[late].to_numpy()
    lat_relaxed = relaxed[["stress_total_yy_GPa", "stress_total_zz_GPa"]].iloc[late].to_numpy()
    # fixed lateral lengths: tension builds a lateral stress (C12 * strain); relaxed: near zero
    assert lat_fixed.mean() > 1.0
    assert abs(lat_relaxed.mean()) < 0.25 * lat_fixed.mean()
    # the crystal contracts laterally (Poisson effect) and is softer along the load (E < C11)
    assert relaxed["cell_length_b_A"].iloc[-1] < 2 * A_CU * (1 - 0.2 * spec.max_strain)
    assert relaxed["cell_length_c_A"].iloc[-1] < 2 * A_CU * (1 - 0.2 * spec.max_strain)
    assert relaxed["stress_virial_xx_GPa"].iloc[-1] < fixed["stress_virial_xx_GPa"].iloc[-1]
    assert relaxed["stress_virial_xx_GPa"].iloc[-1] > 0


# ----------------------------------------------------------------------------- bad input


def test_supercell_smaller_than_cutoff_is_rejected_naming_both_keys():
    spec = _spec(repeat=[1, 1, 1])
    with pytest.raises(ValueError, match=r"validation\.md\.repeat = \[1, 1, 1\].*model\.r_max_A"):
        spec.check_supercell(_cell(spec).cell.array, 4.0, r_max_key="model.r_max_A")
    big = _spec(repeat=[2, 2, 2])
    big.check_supercell(_cell(big).cell.array, 4.0, r_max_key="model.r_max_A")  # 7.18 Å: fine
    # shear narrows the cell: 7.18 Å at the start but 7.153 Å at gamma = 0.1
    shear = _spec(repeat=[2, 2, 2], mode="shear", direction="xy", max_strain=0.1)
    with pytest.raises(ValueError, match=r"7\.15 Å, below the model cutoff"):
        shear.check_supercell(_cell(shear).cell.array, 7.16, r_max_key="model.r_max_A")
    _spec(repeat=[2, 2, 2], mode="shear", direction="xy", max_strain=0.01).check_supercell(
        _cell(shear).cell.array, 7.16, r_max_key="model.r_max_A"
    )


def _tiny_config(**md):
    from dft2mlip.config import validate_config

    cfg = yaml.safe_load((Path(__file__).parent / "workflow" / "config_tiny.yaml").read_text())
    cfg["validation"]["md"].update(md)
    return validate_config(cfg)


@pytest.mark.parametrize(
    ("md", "model", "pattern"),
    [
        (
            {"repeat": [1, 1, 1]},  # given; without it the cell is sized from the cutoff
            {"r_max_A": 6.0},
            r"validation\.md\.repeat = \[1, 1, 1\].*model\.r_max_A = 6 Å",
        ),
        ({"mode": "shear", "direction": "z"}, {}, r"validation\.md\.direction = 'z'"),
        ({"timestep_fs": 4.0, "strain_rate_per_ps": 0.5}, {}, r"strain per step is above"),
    ],
)
def test_check_config_rejects_bad_md_before_any_work(md, model, pattern):
    from dft2mlip.config import ConfigError, check_config

    cfg = _tiny_config(**md)
    cfg["model"].update(model)
    with pytest.raises(ConfigError, match=pattern):
        check_config(cfg)


def test_schema_rejects_unknown_mode_and_long_timestep():
    from dft2mlip.config import ConfigError

    with pytest.raises(ConfigError, match=r"validation\.md\.mode"):
        _tiny_config(mode="torsion")
    with pytest.raises(ConfigError, match=r"validation\.md\.timestep_fs"):
        _tiny_config(timestep_fs=6.0)
    with pytest.raises(ConfigError, match=r"validation\.md\.direction"):
        _tiny_config(direction="diagonal")


def test_heldout_frames_and_their_scores(tmp_path, tension, compression):
    """The held-out set: n frames per path, ids known from the config, the path's MD cell as
    k-mesh reference. Scored against 'DFT' labels that are EMT plus a set offset per frame, the
    errors per component, per strain bin, of forces and energy are those offsets; a failed label
    is listed, not scored."""
    from dft2mlip.data import Label, write_label
    from dft2mlip.validate.deform import heldout_frames, heldout_ids
    from dft2mlip.validate.model_checks import write_heldout_scores

    trajs = {"t": tension[2] / "md.extxyz", "c": compression[2] / "md.extxyz"}
    frames = heldout_frames(trajs, 2)
    assert [f.info["structure_id"] for f in frames] == heldout_ids(["t", "c"], 2)
    for f in frames:
        assert f.info["config_type"] == "heldout"
        np.testing.assert_allclose(f.info["reference_cell"], _cell(tension[0]).cell.array)
    stress_off = np.array([0.3, -0.1, 0.0, 0.05, 0.0, 0.0])  # GPa, model minus DFT below
    paths = []
    for i, atoms in enumerate(frames):
        a = atoms.copy()
        a.calc = EMT()
        scale = 1.0 if abs(a.info["md_strain"]) < 0.02 else 3.0  # low bin, high bin
        a.info["REF_stress"] = a.get_stress(voigt=True) - scale * stress_off * GPa
        a.info["REF_energy"] = a.get_potential_energy() - 0.002 * len(a)  # 2 meV/atom
        a.arrays["REF_forces"] = a.get_forces() - 0.01  # 10 meV/Å on every component
        a.calc = None
        status = "scf_not_converged" if i == 3 else "ok"
        lab = Label(a.info["structure_id"], "heldout", "ok", "", a, settings_hash="h")
        if status != "ok":
            lab = Label(lab.structure_id, "heldout", status, "no", atoms.copy(), settings_hash="h")
        write_label(lab, tmp_path / f"{i}.extxyz")
        paths.append(tmp_path / f"{i}.extxyz")
    out = {"heldout": tmp_path / "h.json", "heldout_table": tmp_path / "h.csv"}
    rec = write_heldout_scores(EMT(), paths, out, "r", 0, n_bins=3)
    assert rec["n_frames"] == 4 and rec["n_ok"] == 3
    assert rec["missing"] == ["heldout-c-01 (scf_not_converged)"]
    assert rec["energy_mae_meV_per_atom"] == pytest.approx(2.0, abs=1e-6)
    assert rec["forces_mae_meV_per_A"] == pytest.approx(10.0, abs=1e-6)
    strains = np.abs([f.info["md_strain"] for f in frames[:3]])
    scales = np.where(strains < 0.02, 1.0, 3.0)
    assert rec["stress_mae_xx_GPa"] == pytest.approx(0.3 * scales.mean(), abs=1e-6)
    assert rec["stress_mae_zz_GPa"] == pytest.approx(0.0, abs=1e-6)
    edges = np.linspace(0, strains.max(), 4)  # strains 0.015 and 0.03: bins 1 and 2
    assert [e["n"] for e in rec["strain_bins"]] == [0, 2, 1]
    for b, entry in enumerate(rec["strain_bins"]):
        inside = (strains >= edges[b]) & ((strains < edges[b + 1]) | (b == 2))
        assert entry["n"] == inside.sum()
        if inside.any():
            expected = np.abs(stress_off).mean() * scales[inside].mean()
            assert entry["stress_mae_GPa"] == pytest.approx(expected, abs=1e-6)
    assert len(pd.read_csv(out["heldout_table"])) == 3
