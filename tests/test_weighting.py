"""Loss-weighting schemes on synthetic loss curves: formulas, behaviour, bookkeeping, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dft2mlip.train.weighting import (
    DWA,
    SCHEME_OPTIONS,
    SCHEMES,
    FixedWeighting,
    GradNorm,
    ReLoBRaLo,
    SoftAdapt,
    TargetWeighting,
    UncertaintyWeighting,
    loss_record,
    make_weighting,
    normalise_mode,
    update_interval,
)

COMPS = ("energy", "forces", "stress")
#: targets of the target scheme: meV/atom, meV/Å, GPa
TARGETS = {"energy": 1.0, "forces": 10.0, "stress": 0.1}


def as_dict(values):
    return dict(zip(COMPS, values, strict=True))


def vector(weights):
    return np.array([weights[c] for c in COMPS])


# Hand-made loss curves (E, F, S) whose changes have exact norms (3-4-5 triangles), so
# d = Δ/‖Δ‖ is known in closed form:
#  t   L_E   L_F   L_S    Δ                     ‖Δ‖   d
#  0   1.00  1.00  1.00
#  1   0.70  0.60  1.00   (-0.3, -0.4,  0.0)    0.5   (-0.6, -0.8,  0.0)
#  2   0.50  0.50  0.80   (-0.2, -0.1, -0.2)    0.3   (-2/3, -1/3, -2/3)
#  3   0.38  0.50  0.64   (-0.12, 0.0, -0.16)   0.2   (-0.6,  0.0, -0.8)
HAND_LOSSES = [[1.0, 1.0, 1.0], [0.7, 0.6, 1.0], [0.5, 0.5, 0.8], [0.38, 0.5, 0.64]]
# softmax(β d) with β = 1, written out
_E1 = [math.exp(-0.6), math.exp(-0.8), math.exp(0.0)]
_E2 = [math.exp(-2 / 3), math.exp(-1 / 3), math.exp(-2 / 3)]
_E3 = [math.exp(-0.6), math.exp(0.0), math.exp(-0.8)]
S1 = np.array(_E1) / sum(_E1)  # (0.274661, 0.224874, 0.500465)
S2 = np.array(_E2) / sum(_E2)  # (0.294498, 0.411005, 0.294498)
S3 = np.array(_E3) / sum(_E3)  # (0.274661, 0.500465, 0.224874)


def hand_run(**kwargs):
    """Weights after each update on HAND_LOSSES (the first is uniform)."""
    sa = SoftAdapt(COMPS, beta=1.0, **kwargs)
    return [vector(sa.update(as_dict(x))) for x in HAND_LOSSES]


def test_uniform_until_two_observations():
    sa = SoftAdapt(COMPS)
    assert sa.weights == pytest.approx(as_dict([1 / 3] * 3))
    assert sa.update(as_dict([5.0, 1.0, 0.1])) == pytest.approx(as_dict([1 / 3] * 3))
    assert sa.update(as_dict([4.0, 1.0, 0.1])) != pytest.approx(as_dict([1 / 3] * 3))


def test_hand_computed_window_1_is_the_latest_softmax():
    w = hand_run(window=1)
    np.testing.assert_allclose(w[0], [1 / 3] * 3, rtol=1e-12)
    np.testing.assert_allclose(w[1], S1, rtol=1e-9)
    np.testing.assert_allclose(w[2], S2, rtol=1e-9)
    np.testing.assert_allclose(w[3], S3, rtol=1e-9)
    np.testing.assert_allclose(w[1], [0.274661, 0.224874, 0.500465], atol=1e-6)
    # the term whose loss did not fall gets the most weight: stress at t = 1, forces at t = 3
    assert w[1].argmax() == 2 and w[3].argmax() == 1


def test_hand_computed_window_averages():
    w2 = hand_run(window=2)
    np.testing.assert_allclose(w2[1], S1, rtol=1e-9)
    np.testing.assert_allclose(w2[2], (S1 + S2) / 2, rtol=1e-9)
    np.testing.assert_allclose(w2[3], (S2 + S3) / 2, rtol=1e-9)  # S1 has left the window
    np.testing.assert_allclose(w2[3], [0.284579, 0.455735, 0.259686], atol=1e-6)
    w3 = hand_run(window=3)
    np.testing.assert_allclose(w3[3], (S1 + S2 + S3) / 3, rtol=1e-9)


def test_hand_computed_loss_weighted_uses_current_losses():
    """w_k ∝ w̃_k f_k with f = L(t) of this update (Heydari et al. 2019), window 2."""
    w = hand_run(window=2, loss_weighted=True)
    expected = [
        S1 * [0.7, 0.6, 1.0],
        (S1 + S2) / 2 * [0.5, 0.5, 0.8],
        (S2 + S3) / 2 * [0.38, 0.5, 0.64],
    ]
    for t, e in enumerate(expected, start=1):
        np.testing.assert_allclose(w[t], e / e.sum(), rtol=1e-9)
    np.testing.assert_allclose(w[3], [0.215330, 0.453733, 0.330937], atol=1e-6)


def test_loss_weighted_forgets_everything_outside_the_window():
    """Not compounding: two runs with different pasts but the same last window + 1 losses
    have the same weights (the earlier code multiplied by the previous weights, so the
    whole history stayed in them)."""
    tail = [[0.9, 0.8, 0.7], [0.85, 0.6, 0.69], [0.8, 0.55, 0.5], [0.6, 0.5, 0.49]]
    past_a = [[3.0, 1.0, 1.0], [1.0, 2.0, 0.9], [0.95, 1.0, 0.8]]
    past_b = [[1.0, 1.0, 5.0], [0.95, 0.9, 3.0]]
    for window in (1, 3):
        a = SoftAdapt(COMPS, window=window, loss_weighted=True)
        b = SoftAdapt(COMPS, window=window, loss_weighted=True)
        wa = [a.update(as_dict(x)) for x in past_a][-1]
        wb = [b.update(as_dict(x)) for x in past_b][-1]
        assert wa != pytest.approx(wb, rel=1e-3)
        for x in tail:  # window + 1 <= 4 observations
            wa, wb = a.update(as_dict(x)), b.update(as_dict(x))
        assert wa == pytest.approx(wb, rel=1e-12)


def random_curves(rng, n_steps, n_comp=3):
    """Positive loss curves: random walks in log space with occasional repeats (Δ = 0)."""
    log_l = rng.uniform(-3, 1, n_comp)
    curves = []
    for _ in range(n_steps):
        if rng.random() > 0.1:
            log_l = log_l + rng.normal(-0.05, 0.2, n_comp)
        curves.append(np.exp(log_l))
    return curves


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_window_1_weights_change_on_every_interval(loss_weighted):
    """Window 1: each update's weights are its own softmax vector, whatever came before."""
    rng = np.random.default_rng(11)
    curves = [np.exp(rng.normal(0, 1, 3)) for _ in range(30)]
    sa = SoftAdapt(COMPS, window=1, loss_weighted=loss_weighted)
    previous = vector(sa.update(as_dict(curves[0])))
    for t in range(1, len(curves)):
        w = vector(sa.update(as_dict(curves[t])))
        assert not np.allclose(w, previous, rtol=1e-6)
        fresh = SoftAdapt(COMPS, window=1, loss_weighted=loss_weighted)
        fresh.update(as_dict(curves[t - 1]))
        np.testing.assert_allclose(w, vector(fresh.update(as_dict(curves[t]))), rtol=1e-12)
        previous = w


def test_weight_ratio_bounded_by_beta():
    """‖d‖ ≤ 1, so d_max − d_min ≤ √2 and every softmax vector (and their mean) has
    max/min ≤ exp(√2 β) ≤ exp(2β), over random curves, betas and windows."""
    rng = np.random.default_rng(3)
    for _ in range(100):
        beta = float(rng.uniform(0.1, 5.0))
        sa = SoftAdapt(COMPS, beta=beta, window=int(rng.integers(1, 8)))
        for x in random_curves(rng, 40):
            w = vector(sa.update(as_dict(x)))
            assert w.max() / w.min() <= math.exp(math.sqrt(2) * beta) * (1 + 1e-12)
            assert w.max() / w.min() <= math.exp(2 * beta)


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_normalise_initial_makes_weights_invariant_to_rescaling_one_term(loss_weighted):
    """The trainer feeds update() with L_k / L_k^ref (``normalise: initial``); rescaling one
    term's loss by a constant (other units, a different material) then changes nothing.
    Without the normalisation it does change the weights."""
    rng = np.random.default_rng(5)
    curves = random_curves(rng, 25)
    scaled = [x * [1.0, 1.0, 1e-4] for x in curves]  # stress in other units

    def weights(seq, normalise):
        ref = seq[0] if normalise else np.ones(3)
        sa = SoftAdapt(COMPS, beta=1.1, window=3, loss_weighted=loss_weighted)
        return [vector(sa.update({k: x[i] / ref[i] for i, k in enumerate(COMPS)})) for x in seq]

    for a, b in zip(weights(curves, True), weights(scaled, True), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    raw_a, raw_b = weights(curves, False), weights(scaled, False)
    assert not np.allclose(raw_a[-1], raw_b[-1], rtol=1e-3)


def exponential_run(rates, beta=1.1, window=5, n=50):
    """Weights and normalised losses f = L/L(0) on L_k(t) = a_k exp(−r_k t), t = 0..n."""
    a = np.array([2.0, 0.5, 0.01])  # (eV/atom)², (eV/Å)², (eV/Å³)²: very different scales
    sa = SoftAdapt(COMPS, beta=beta, window=window, loss_weighted=True)
    out = []
    for t in range(n + 1):
        losses = a * np.exp(-np.asarray(rates) * t)
        f = losses / a  # normalise: initial, L_k^ref = L_k(0) = a_k
        out.append((vector(sa.update(as_dict(f))), f))
    return out


def test_loss_weighted_does_not_collapse_on_smooth_curves():
    """w_k ≤ f_k R / (f_k R + Σ_{j≠k} f_j) with R = exp(√2 β) (class docstring). With decay
    rates 0.05, 0.04, 0.03 per interval, f_k / f_j ≤ exp(0.02 · 50) = e over 50 intervals, so
    no weight exceeds e R / (e R + 2) = 0.8656 (β = 1.1). The earlier, compounding code
    reached 0.93 on these curves, and 0.96 within 11 intervals with rates 0.1, 0.05, 0.02."""
    r_bound = math.exp(math.sqrt(2) * 1.1)
    bound = math.e * r_bound / (math.e * r_bound + 2)
    assert bound == pytest.approx(0.8656, abs=1e-4)
    weights = [w for w, _ in exponential_run((0.05, 0.04, 0.03))]
    assert max(w.max() for w in weights) <= bound < 0.9
    weights = [w for w, _ in exponential_run((0.1, 0.05, 0.02))]
    assert max(w.max() for w in weights) < 0.9


def test_loss_weighted_bound_from_current_losses_over_random_curves():
    rng = np.random.default_rng(8)
    for _ in range(50):
        beta = float(rng.uniform(0.5, 3.0))
        r_bound = math.exp(math.sqrt(2) * beta)
        rates = rng.uniform(0.0, 0.2, 3)
        for w, f in exponential_run(rates, beta=beta, window=int(rng.integers(1, 8))):
            others = f.sum() - f
            assert np.all(w <= f * r_bound / (f * r_bound + others) * (1 + 1e-9))


def test_stalled_term_gains_weight_improving_terms_lose_it():
    sa = SoftAdapt(COMPS, beta=1.1, window=5)
    energy, forces, stress = 1.0, 1.0, 1.0
    for _ in range(10):
        energy -= 0.05
        forces -= 0.02
        weights = sa.update(as_dict([energy, forces, stress]))  # stress stops improving
    assert weights["stress"] > 1 / 3
    assert weights["energy"] < 1 / 3 and weights["forces"] < 1 / 3
    assert weights["stress"] > weights["forces"] > weights["energy"]  # slower fall, more weight


def test_growing_term_gains_most():
    sa = SoftAdapt(COMPS, beta=1.0, window=1)
    sa.update(as_dict([1.0, 1.0, 1.0]))
    weights = sa.update(as_dict([0.9, 1.0, 1.2]))
    assert weights["stress"] > weights["forces"] > weights["energy"]


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_scale_of_losses_does_not_matter(loss_weighted):
    """Δ is normalised by its norm and f by its sum: multiplying all losses by a constant
    changes nothing."""
    seq = [[1.0, 3.0, 0.2], [0.8, 2.0, 0.25], [0.7, 1.9, 0.1], [0.71, 1.5, 0.09]]
    a = SoftAdapt(COMPS, loss_weighted=loss_weighted)
    b = SoftAdapt(COMPS, loss_weighted=loss_weighted)
    for losses in seq:
        wa = a.update(as_dict(losses))
        wb = b.update(as_dict([1e-3 * x for x in losses]))
    assert wa == pytest.approx(wb, rel=1e-12)


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_weights_positive_finite_normalised_over_random_sequences(loss_weighted):
    rng = np.random.default_rng(42)
    for _ in range(200):
        n_comp = int(rng.integers(2, 4))
        comps = COMPS[:n_comp]
        sa = SoftAdapt(
            comps,
            beta=float(rng.uniform(0.05, 20.0)),
            window=int(rng.integers(1, 9)),
            loss_weighted=loss_weighted,
        )
        scales = 10.0 ** rng.uniform(-8, 3, n_comp)
        for _ in range(int(rng.integers(1, 60))):
            if rng.random() < 0.1:  # repeated values: Δ = 0
                losses = {c: 1.0 for c in comps}
            else:
                losses = {
                    c: float(s * rng.lognormal(0, 1)) for c, s in zip(comps, scales, strict=True)
                }
            w = np.array(list(sa.update(losses).values()))
            assert np.all(np.isfinite(w)) and np.all(w > 0)
            assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_identical_losses_keep_weights_finite():
    sa = SoftAdapt(COMPS)
    for _ in range(5):
        weights = sa.update(as_dict([1.0, 1.0, 1.0]))
    assert weights == pytest.approx(as_dict([1 / 3] * 3))


@pytest.mark.parametrize("loss_weighted", [False, True])
def test_state_dict_round_trip_continues_identically(loss_weighted):
    rng = np.random.default_rng(0)
    seq = [as_dict(rng.uniform(0.1, 1.0, 3)) for _ in range(12)]
    a = SoftAdapt(COMPS, beta=1.1, window=3, loss_weighted=loss_weighted)
    for losses in seq[:5]:
        a.update(losses)
    state = json.loads(json.dumps(a.state_dict()))  # must be JSON-able
    b = SoftAdapt(COMPS, beta=9.0, window=1)  # constructor values are overwritten by the state
    b.load_state_dict(state)
    assert b.weights == a.weights
    for losses in seq[5:]:
        assert b.update(losses) == a.update(losses)


def test_state_of_other_scheme_is_rejected():
    sa = SoftAdapt(COMPS)
    with pytest.raises(ValueError, match="fixed"):
        sa.load_state_dict(FixedWeighting({"energy": 1.0}).state_dict())
    with pytest.raises(ValueError, match="components"):
        SoftAdapt(("energy", "forces")).load_state_dict(sa.state_dict())


@pytest.mark.parametrize("beta", [0.0, -1.0, float("nan")])
def test_softadapt_rejects_non_positive_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        SoftAdapt(COMPS, beta=beta)


def test_softadapt_rejects_bad_window_and_components():
    with pytest.raises(ValueError, match="window"):
        SoftAdapt(COMPS, window=0)
    with pytest.raises(ValueError, match="components"):
        SoftAdapt(("energy", "virials"))


def test_softadapt_rejects_missing_or_nan_losses():
    sa = SoftAdapt(COMPS)
    with pytest.raises(ValueError, match="stress"):
        sa.update({"energy": 1.0, "forces": 1.0})
    with pytest.raises(ValueError, match="non-finite"):
        sa.update({"energy": 1.0, "forces": float("nan"), "stress": 1.0})


def test_fixed_weights_are_constant():
    fixed = FixedWeighting({"energy": 1.0, "forces": 100.0, "stress": 1.0})
    assert fixed.components == COMPS
    assert fixed.update(as_dict([3.0, 2.0, 1.0])) == {"energy": 1.0, "forces": 100.0, "stress": 1.0}
    clone = FixedWeighting({"energy": 1.0})
    clone.load_state_dict(json.loads(json.dumps(FixedWeighting({"energy": 2.0}).state_dict())))
    assert clone.weights == {"energy": 2.0}


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"energy": 1.0, "forces": -1.0}, r"training\.runs\.fixed\.weights\.forces"),
        ({"energy": 1.0, "stress": float("nan")}, r"training\.runs\.fixed\.weights\.stress"),
        ({"energy": float("inf")}, r"training\.runs\.fixed\.weights\.energy"),
        ({"energy": 0.0, "forces": 0.0, "stress": 0.0}, "all weights are zero"),
        ({"energy": 1.0, "virial": 1.0}, r"weights\.virial.*unknown"),
    ],
)
def test_fixed_rejects_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        FixedWeighting(weights, run_name="fixed")


def test_make_weighting_from_config_sections():
    fixed = make_weighting(
        "fixed", {"scheme": "fixed", "weights": {"energy": 1, "forces": 100, "stress": 1}}, COMPS
    )
    assert isinstance(fixed, FixedWeighting) and fixed.weights["forces"] == 100.0
    adaptive = make_weighting("adaptive", {"scheme": "softadapt", "beta": 1.1, "window": 5}, COMPS)
    assert isinstance(adaptive, SoftAdapt)
    assert (adaptive.beta, adaptive.window, adaptive.components) == (1.1, 5, COMPS)


def test_make_weighting_unknown_scheme_lists_known_ones():
    with pytest.raises(
        ValueError, match=r"training\.runs\.mine\.scheme.*fixed.*softadapt.*gradnorm"
    ):
        make_weighting("mine", {"scheme": "magic"}, COMPS)


def test_make_weighting_beta_error_names_run():
    with pytest.raises(ValueError, match=r"training\.runs\.adaptive.*beta"):
        make_weighting("adaptive", {"scheme": "softadapt", "beta": 0}, COMPS)


def test_make_weighting_needs_labels_for_weighted_components():
    no_stress = ("energy", "forces")
    with pytest.raises(ValueError, match=r"training\.runs\.fixed\.weights\.stress"):
        make_weighting(
            "fixed", {"scheme": "fixed", "weights": {"energy": 1, "stress": 1}}, no_stress
        )
    with pytest.raises(ValueError, match=r"training\.runs\.adaptive.*stress"):
        make_weighting("adaptive", {"scheme": "softadapt"}, no_stress)
    zero = make_weighting(
        "no-stress", {"scheme": "fixed", "weights": {"energy": 1, "stress": 0}}, no_stress
    )
    assert zero.weights["stress"] == 0.0
    ef = make_weighting(
        "ef", {"scheme": "softadapt", "components": ["energy", "forces"]}, no_stress
    )
    assert ef.components == no_stress


def test_normalise_mode():
    for mode in ("initial", "counts", "variance", "none"):
        assert normalise_mode("a", {"normalise": mode}) == mode
    assert normalise_mode("a", {}) == "none"
    with pytest.raises(ValueError, match=r"training\.runs\.a\.normalise"):
        normalise_mode("a", {"normalise": "running"})


# ------------------------------------------------------------------------------------------
# Anchored SoftAdapt: w_k ∝ a_k w̃_k (NequIP PR #515's weighted variant)

ANCHOR = {"energy": 1.0, "forces": 4.0, "stress": 1.0}
A = np.array([1.0, 4.0, 1.0]) / 6.0


def test_anchored_starts_at_the_anchor_and_stays_there_while_all_terms_fall_alike():
    """Before two observations w = a / Σa; when every loss changes by the same amount, d is
    (−1, −1, −1)/√3, the softmax is uniform and w = a / Σa exactly."""
    sa = SoftAdapt(COMPS, anchor=ANCHOR)
    np.testing.assert_allclose(vector(sa.weights), A, rtol=1e-15)
    np.testing.assert_allclose(vector(sa.update(as_dict([1.0, 1.0, 1.0]))), A, rtol=1e-15)
    for t in range(1, 8):
        level = 1.0 - 0.1 * t
        np.testing.assert_allclose(vector(sa.update(as_dict([level] * 3))), A, rtol=1e-12)


def test_anchored_hand_computed_window_2():
    """w(t) = a ⊙ w̃(t) / Σ (a ⊙ w̃(t)), w̃ the window mean of the hand softmax vectors."""
    sa = SoftAdapt(COMPS, beta=1.0, window=2, anchor=ANCHOR)
    w = [vector(sa.update(as_dict(x))) for x in HAND_LOSSES]
    expected = [A, A * S1, A * (S1 + S2) / 2, A * (S2 + S3) / 2]
    for got, e in zip(w, expected, strict=True):
        np.testing.assert_allclose(got, e / e.sum(), rtol=1e-9)
    # written out at t = 1: (1·0.274661, 4·0.224874, 1·0.500465) / 1.674622
    np.testing.assert_allclose(w[1], [0.164014, 0.537133, 0.298853], atol=1e-6)


def test_anchored_oscillates_around_the_anchor_not_around_equal_shares():
    """(w_k / a_k) / (w_j / a_j) = w̃_k / w̃_j ≤ exp(√2 β) on any curves (‖d‖ ≤ 1), and its
    geometric mean over random curves stays near 1; the plain scheme's mean weights are near
    1/3 instead."""
    beta = 1.1
    rng = np.random.default_rng(4)
    anchored = SoftAdapt(COMPS, beta=beta, window=5, anchor=ANCHOR)
    plain = SoftAdapt(COMPS, beta=beta, window=5)
    losses = np.ones(3)
    log_ratio, plain_w = [], []
    for _ in range(300):
        losses = losses * rng.uniform(0.9, 1.05, 3)
        w = vector(anchored.update(as_dict(losses))) / A
        assert w.max() / w.min() <= math.exp(math.sqrt(2) * beta) * (1 + 1e-12)
        log_ratio.append(np.log(w / w.mean()))
        plain_w.append(vector(plain.update(as_dict(losses))))
    assert np.abs(np.mean(log_ratio, axis=0)).max() < 0.1
    np.testing.assert_allclose(np.mean(plain_w, axis=0), [1 / 3] * 3, atol=0.03)


def test_equal_anchor_is_the_plain_scheme():
    rng = np.random.default_rng(5)
    seq = [as_dict(rng.uniform(0.1, 1.0, 3)) for _ in range(10)]
    for loss_weighted in (False, True):
        a = SoftAdapt(COMPS, loss_weighted=loss_weighted)
        b = SoftAdapt(COMPS, loss_weighted=loss_weighted, anchor=dict.fromkeys(COMPS, 7.0))
        for losses in seq:
            assert b.update(losses) == pytest.approx(a.update(losses), rel=1e-12)


def test_anchored_state_round_trip_and_config():
    sa = make_weighting("r", {"scheme": "softadapt", "anchor": ANCHOR}, COMPS)
    assert sa.options()["anchor"] == ANCHOR
    rng = np.random.default_rng(6)
    seq = [as_dict(rng.uniform(0.1, 1.0, 3)) for _ in range(9)]
    for losses in seq[:4]:
        sa.update(losses)
    b = SoftAdapt(COMPS)
    b.load_state_dict(json.loads(json.dumps(sa.state_dict())))
    assert b.anchor == ANCHOR
    for losses in seq[4:]:
        assert b.update(losses) == sa.update(losses)


@pytest.mark.parametrize(
    ("anchor", "match"),
    [
        ({"energy": 1.0, "forces": 4.0}, r"missing \['stress'\]"),
        ({**ANCHOR, "virial": 1.0}, r"extra \['virial'\]"),
        ({**ANCHOR, "forces": 0.0}, "anchor.forces must be a finite number > 0"),
        ({**ANCHOR, "forces": "lots"}, "anchor.forces"),
        ([1, 4, 1], "must be a mapping"),
    ],
)
def test_anchor_errors_name_the_run_and_the_key(anchor, match):
    with pytest.raises(ValueError, match=match) as err:
        make_weighting("adaptive", {"scheme": "softadapt", "anchor": anchor}, COMPS)
    assert "training.runs.adaptive" in str(err.value)


# ------------------------------------------------------------------------------------------
# ReLoBRaLo, DWA, uncertainty weighting, GradNorm


def softmax(z):
    e = np.exp(np.asarray(z) - np.max(z))
    return e / e.sum()


def relobralo_reference(seq, alpha, tau, rho):
    """Bischof & Kraus (2021) written out with a fixed ρ (weights normalised to sum 1)."""
    w = np.full(3, 1 / 3)
    for t in range(1, len(seq)):
        bal_prev = softmax(np.array(seq[t]) / (tau * np.array(seq[t - 1])))
        bal_init = softmax(np.array(seq[t]) / (tau * np.array(seq[0])))
        w = alpha * (rho * w + (1 - rho) * bal_init) + (1 - alpha) * bal_prev
    return w / w.sum()


SEQ = [[1.0, 2.0, 3.0], [0.8, 1.5, 3.1], [0.7, 1.2, 3.0], [0.65, 1.0, 2.9], [0.6, 0.9, 2.95]]


@pytest.mark.parametrize("lookback", [0.0, 1.0])
def test_relobralo_matches_formula(lookback):
    rl = ReLoBRaLo(COMPS, alpha=0.8, temperature=0.5, lookback=lookback, seed=1)
    for losses in SEQ:
        weights = rl.update(as_dict(losses))
    expected = relobralo_reference(SEQ, 0.8, 0.5, rho=lookback)
    assert [weights[c] for c in COMPS] == pytest.approx(list(expected), rel=1e-12)


def test_dwa_matches_formula():
    dwa = DWA(COMPS, temperature=2.0)
    assert dwa.update(as_dict(SEQ[0])) == pytest.approx(as_dict([1 / 3] * 3))
    for losses in SEQ[1:]:
        weights = dwa.update(as_dict(losses))
    expected = softmax(np.array(SEQ[-1]) / np.array(SEQ[-2]) / 2.0)
    assert [weights[c] for c in COMPS] == pytest.approx(list(expected), rel=1e-12)


@pytest.mark.parametrize(
    "make", [lambda: ReLoBRaLo(COMPS, alpha=0.5, lookback=1.0), lambda: DWA(COMPS)]
)
def test_stalled_term_gains_weight_ratio_schemes(make):
    scheme = make()
    energy, forces, stress = 1.0, 1.0, 1.0
    for _ in range(10):
        energy *= 0.8
        forces *= 0.9
        weights = scheme.update(as_dict([energy, forces, stress]))  # stress stalls
    assert weights["stress"] > weights["forces"] > weights["energy"]
    assert weights["stress"] > 1 / 3


def _random_sequence_weights(scheme, rng, n_steps):
    comps = scheme.components
    scales = 10.0 ** rng.uniform(-8, 3, len(comps))
    for _ in range(n_steps):
        if rng.random() < 0.1:
            losses = {c: 1.0 for c in comps}
        else:
            losses = {c: float(s * rng.lognormal(0, 1)) for c, s in zip(comps, scales, strict=True)}
        yield np.array(list(scheme.update(losses).values()))


@pytest.mark.parametrize("kind", ["relobralo", "dwa"])
def test_ratio_schemes_positive_finite_normalised(kind):
    rng = np.random.default_rng(7)
    for _ in range(100):
        comps = COMPS[: int(rng.integers(2, 4))]
        if kind == "relobralo":
            scheme = ReLoBRaLo(
                comps,
                alpha=float(rng.uniform()),
                temperature=float(rng.uniform(0.01, 5)),
                lookback=float(rng.uniform()),
                seed=int(rng.integers(100)),
            )
        else:
            scheme = DWA(comps, temperature=float(rng.uniform(0.01, 5)))
        for w in _random_sequence_weights(scheme, rng, int(rng.integers(1, 40))):
            assert np.all(np.isfinite(w)) and np.all(w > 0)
            assert w.sum() == pytest.approx(1.0, abs=1e-12)


def _fresh(kind):
    return {
        "softadapt": lambda: SoftAdapt(COMPS, beta=1.1, window=3),
        "relobralo": lambda: ReLoBRaLo(COMPS, alpha=0.7, lookback=0.5, seed=3),
        "dwa": lambda: DWA(COMPS),
        "gradnorm": lambda: GradNorm(COMPS, alpha=1.0, lr=0.05),
        "uncertainty": lambda: UncertaintyWeighting(COMPS),
        "target": lambda: TargetWeighting(COMPS, TARGETS, beta=1.0),
    }[kind]()


def _drive(scheme, losses):
    """One interval: GradNorm learns from gradient norms (here: made-up ones), others update."""
    if isinstance(scheme, GradNorm):
        scheme.step_from_norms(losses, {c: 1.0 + i for i, c in enumerate(COMPS)})
        return scheme.weights
    return scheme.update(losses)


@pytest.mark.parametrize("kind", ["softadapt", "relobralo", "dwa", "gradnorm", "target"])
def test_state_round_trip_continues_identically_all_schemes(kind):
    rng = np.random.default_rng(1)
    seq = [as_dict(rng.uniform(0.1, 1.0, 3)) for _ in range(20)]
    a = _fresh(kind)
    for losses in seq[:7]:
        _drive(a, losses)
    b = _fresh(kind)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for losses in seq[7:]:
        assert _drive(b, losses) == _drive(a, losses)


def test_relobralo_random_lookback_is_seeded_and_restored():
    """Same seed, same draws; the RNG state travels in the state dict."""
    seq = [as_dict(x) for x in np.random.default_rng(2).uniform(0.1, 1, (30, 3))]
    a, b = ReLoBRaLo(COMPS, lookback=0.5, seed=9), ReLoBRaLo(COMPS, lookback=0.5, seed=9)
    c = ReLoBRaLo(COMPS, lookback=0.5, seed=10)
    wa = [a.update(x) for x in seq]
    assert wa == [b.update(x) for x in seq]
    assert wa != [c.update(x) for x in seq]


def test_uncertainty_log_variances_learn_the_loss_scale():
    """½(exp(−s) L + s) is stationary at s = log L (weight ½ exp(−s) = 1/(2L)), and the
    optimiser moves every s_k towards log L_k, whatever the scale of L_k."""
    import torch

    values = [4.0, 0.25, 1e-3]
    losses = {c: torch.tensor(v, dtype=torch.float64) for c, v in zip(COMPS, values, strict=True)}
    target = np.log(values)
    unc = UncertaintyWeighting(COMPS)
    with torch.no_grad():
        unc.log_variances.copy_(torch.tensor(target))
    unc.combine(losses).backward()
    np.testing.assert_allclose(unc.log_variances.grad.numpy(), 0.0, atol=1e-12)
    assert unc.weights["stress"] == pytest.approx(0.5 / 1e-3, rel=1e-12)

    unc = UncertaintyWeighting(COMPS)
    opt = torch.optim.Adam(unc.parameters(), lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        unc.combine(losses).backward()
        opt.step()
    s = unc.log_variances.detach().numpy()
    assert np.all(np.abs(s - target) < 0.5 * np.abs(target))  # at least halfway from s = 0
    clone = UncertaintyWeighting(COMPS)
    clone.load_state_dict(json.loads(json.dumps(unc.state_dict())))
    assert clone.weights == unc.weights


def test_uncertainty_combine_formula_and_missing_component():
    import torch

    unc = UncertaintyWeighting(COMPS)
    with torch.no_grad():
        unc.log_variances.copy_(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64))
    losses = {"energy": torch.tensor(2.0, dtype=torch.float64), "forces": torch.tensor(3.0)}
    expected = 0.5 * (np.exp(-0.5) * 2.0 + 0.5) + 0.5 * (np.exp(1.0) * 3.0 - 1.0)
    assert float(unc.combine(losses).detach()) == pytest.approx(expected, rel=1e-12)


def test_gradnorm_equalises_weighted_gradient_norms():
    """α = 0: GradNorm drives w_k ‖∇_W L_k‖ to a common value, whatever the raw scales."""
    import torch

    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    x = torch.randn(3, 4, dtype=torch.float64)
    scales = torch.tensor([100.0, 1.0, 0.01], dtype=torch.float64)
    gn = GradNorm(COMPS, alpha=0.0, lr=0.01)
    for _ in range(1500):
        y = x @ shared
        losses = {c: scales[i] * y[i] ** 2 for i, c in enumerate(COMPS)}
        gn.batch_step(losses, [shared])
    y = x @ shared
    norms = []
    for i, _ in enumerate(COMPS):
        (g,) = torch.autograd.grad(scales[i] * y[i] ** 2, [shared], retain_graph=True)
        norms.append(float(g.norm()))
    weighted = np.array(list(gn.weights.values())) * norms
    assert weighted.max() / weighted.min() < 1.2
    w = np.array(list(gn.weights.values()))
    assert np.all(w > 0) and w.sum() == pytest.approx(1.0, abs=1e-12)
    assert w[2] > w[1] > w[0]  # the smallest raw gradient gets the largest weight


def test_gradnorm_slow_term_gains_weight():
    """Equal gradient norms: the term whose loss fell least (largest L/L0) gains weight (α > 0)."""
    gn = GradNorm(COMPS, alpha=1.5, lr=0.01)
    norms = {c: 1.0 for c in COMPS}
    gn.step_from_norms(as_dict([1.0, 1.0, 1.0]), norms)  # records L(0)
    for _ in range(20):
        gn.step_from_norms(as_dict([0.5, 0.5, 1.0]), norms)
    w = gn.weights
    assert w["stress"] > 1 / 3 > w["energy"]
    assert w["energy"] == pytest.approx(w["forces"], rel=1e-12)


@pytest.mark.parametrize(
    "run_cfg, match",
    [
        ({"scheme": "relobralo", "temperature": 0}, r"training\.runs\.r.*temperature"),
        ({"scheme": "relobralo", "alpha": 1.5}, r"training\.runs\.r.*alpha"),
        ({"scheme": "relobralo", "lookback": -0.1}, r"training\.runs\.r.*lookback"),
        ({"scheme": "dwa", "temperature": -2}, r"training\.runs\.r.*temperature"),
        ({"scheme": "gradnorm", "alpha": -1}, r"training\.runs\.r.*alpha"),
        ({"scheme": "gradnorm", "weights_lr": 0}, r"training\.runs\.r.*weights_lr"),
        ({"scheme": "softadapt", "beta": -0.5}, r"training\.runs\.r.*beta"),
        ({"scheme": "dwa", "components": ["energy", "virial"]}, r"training\.runs\.r\.components"),
    ],
)
def test_make_weighting_rejects_bad_options(run_cfg, match):
    with pytest.raises(ValueError, match=match):
        make_weighting("r", run_cfg, COMPS)


def test_make_weighting_builds_every_scheme():
    for scheme in SCHEMES:
        cfg = {"scheme": scheme, "weights": {"energy": 1.0}, "targets": TARGETS}
        w = make_weighting("r", cfg, COMPS).weights
        assert all(math.isfinite(v) and v >= 0 for v in w.values()), scheme
    with pytest.raises(ValueError, match=r"training\.runs\.r: uncertainty.*stress"):
        make_weighting("r", {"scheme": "uncertainty"}, ("energy", "forces"))


def test_update_interval():
    assert update_interval("r", {}) == 0
    assert update_interval("r", {"update_interval_batches": 4}) == 4
    with pytest.raises(ValueError, match=r"training\.runs\.r\.update_interval_batches"):
        update_interval("r", {"update_interval_batches": -1})


@pytest.mark.parametrize(
    "run, match",
    [
        ({"scheme": "relobralo", "alpha": 1.5}, r"training\.runs\.new.*alpha"),
        ({"scheme": "softadapt", "beta": 0.0}, r"training\.runs\.new\.beta"),
        ({"scheme": "fixed", "weights": {"energy": 0.0, "forces": 0.0}}, "all weights are zero"),
        ({"scheme": "fixed", "weights": {"energy": -1.0}}, r"training\.runs\.new\.weights\.energy"),
        ({"scheme": "unknown"}, r"training\.runs\.new\.scheme"),
    ],
)
def test_config_rejects_bad_runs_before_any_work(run, match):
    """The same checks run in check_config, when Snakemake builds the DAG."""
    from pathlib import Path

    import yaml

    from dft2mlip.config import ConfigError, check_config, validate_config

    cfg = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    cfg["training"]["runs"]["new"] = run
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg)
        check_config(cfg)


def test_config_accepts_every_scheme():
    from pathlib import Path

    import yaml

    from dft2mlip.config import check_config, validate_config

    cfg = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    cfg["training"]["runs"] = {
        s: {"scheme": s, "weights": {"energy": 1.0}, "targets": TARGETS} for s in SCHEMES
    }
    cfg["training"]["runs"]["gradnorm"].update(alpha=0.5, weights_lr=0.01)
    cfg["training"]["runs"]["relobralo"].update(update_interval_batches=4, temperature=0.2)
    cfg["training"]["reference_run"] = "softadapt"
    validate_config(cfg)
    check_config(cfg)


def test_options_are_the_run_config_keys_of_each_scheme():
    for scheme in SCHEMES:
        cfg = {"scheme": scheme, "weights": {"energy": 1.0}, "targets": TARGETS}
        built = make_weighting("r", cfg, COMPS)
        assert tuple(built.options()) == SCHEME_OPTIONS[scheme], scheme
        json.dumps(built.options())  # plain types
    sa = make_weighting("r", {"scheme": "softadapt", "beta": 0.7, "window": 2}, COMPS)
    assert sa.options() == {"beta": 0.7, "window": 2, "loss_weighted": False, "anchor": None}


def test_loss_record_of_fixed_weights_without_normalisation():
    fixed = FixedWeighting({"energy": 1.0, "forces": 100.0})
    rows = [{"epoch": 1, "weight_energy": 1.0, "weight_forces": 100.0, "weight_stress": 0.0}]
    record = loss_record(
        fixed,
        normalise="none",
        refs={"energy": 1.0, "forces": 1.0},
        update_interval_batches=0,
        history=rows,
        model_epoch=1,
    )
    assert record["scheme"] == "fixed" and record["normalise"] == "none"
    assert record["options"] == {"weights": {"energy": 1.0, "forces": 100.0}}
    assert record["reference_losses"] is None  # no references without normalisation
    assert record["weight_trajectory"] == {
        "epoch": [1],
        "energy": [1.0],
        "forces": [100.0],
        "stress": [0.0],
    }
    assert json.loads(json.dumps(record)) == record


def test_loss_record_keeps_references_and_the_whole_trajectory():
    sa = SoftAdapt(COMPS, window=2)
    rows = []
    for epoch, losses in enumerate(HAND_LOSSES, start=1):
        used = sa.weights
        sa.update(as_dict(losses))
        rows.append({"epoch": epoch, **{f"weight_{k}": used[k] for k in COMPS}})
    refs = {"energy": 0.5, "forces": 0.25, "stress": 1e-5}
    record = loss_record(
        sa, normalise="initial", refs=refs, update_interval_batches=4, history=rows, model_epoch=3
    )
    assert record["reference_losses"] == refs
    assert record["update_interval_batches"] == 4 and record["model_epoch"] == 3
    assert record["weight_trajectory"]["epoch"] == [1, 2, 3, 4]
    assert record["weight_trajectory"]["stress"] == [r["weight_stress"] for r in rows]
    last_used = {k: rows[-1][f"weight_{k}"] for k in COMPS}
    assert record["final_weights"] == sa.weights != last_used  # after the last update


def test_target_weights_by_hand():
    """Training RMSEs 4x, 2x and 2x the targets (1 meV/atom, 10 meV/Å, 0.1 GPa), β = 1: the
    emphasis is (4, 2, 2) / 8 and each weight is emphasis / target² in the losses' units."""
    gpa = 1.0 / 160.21766208  # eV/Å³ per GPa
    t = {"energy": 1e-3, "forces": 1e-2, "stress": 0.1 * gpa}
    losses = {"energy": (4e-3) ** 2, "forces": (2e-2) ** 2, "stress": (0.2 * gpa) ** 2}
    scheme = TargetWeighting(COMPS, TARGETS, beta=1.0)
    # before any update: uniform emphasis, each term divided by its squared target
    assert scheme.weights == pytest.approx({c: 1 / 3 / t[c] ** 2 for c in COMPS})
    w = scheme.update(losses)
    assert scheme.emphasis() == pytest.approx({"energy": 0.5, "forces": 0.25, "stress": 0.25})
    assert w["energy"] == pytest.approx(0.5 / 1e-6)
    assert w["forces"] == pytest.approx(0.25 / 1e-4)
    assert w["stress"] == pytest.approx(0.25 / (0.1 * gpa) ** 2, rel=1e-6)
    # the loss the optimiser sees is Σ u_k r_k² = 0.5·16 + 0.25·4 + 0.25·4 = 10
    assert sum(w[c] * losses[c] for c in COMPS) == pytest.approx(10.0, rel=1e-6)


def test_target_beta_zero_is_fixed_division_by_squared_targets():
    scheme = TargetWeighting(COMPS, TARGETS, beta=0.0)
    before = scheme.weights
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert scheme.update(as_dict(rng.uniform(1e-8, 1e-2, 3))) == pytest.approx(before)


def test_target_scheme_needs_raw_losses_and_every_target():
    with pytest.raises(ValueError, match="normalise: none"):
        make_weighting("r", {"scheme": "target", "targets": TARGETS, "normalise": "initial"})
    with pytest.raises(ValueError, match="stress"):
        make_weighting("r", {"scheme": "target", "targets": {"energy": 1.0, "forces": 1.0}})
