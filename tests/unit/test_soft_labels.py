"""Released soft labels are calibrated so that every class keeps the soft-label mass its texts
would have with hard labels and each text's own class leads its soft label: no class is left
that heads trained on the released set cannot predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tdd_priv.errors import ConfigError
from tdd_priv.methods import DistillInput, distill
from tdd_priv.methods.soft_labels import (
    DEFAULT_LABEL_SHARE,
    calibrate_soft_labels,
    starved_classes,
)
from tdd_priv.methods.teacher import TeacherConfig, select_for_teacher
from tests.unit.test_learned_methods import _blobs


@settings(max_examples=60, deadline=None)
@given(
    logits=hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 12), st.integers(2, 8)),
        elements=st.floats(-30, 30),
    ),
    data=st.data(),
    share=st.floats(0.0, 0.95),
)
def test_each_row_leads_with_its_own_class_for_any_input(
    logits: np.ndarray, data: st.DataObject, share: float
) -> None:
    m, classes = logits.shape
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = np.array(data.draw(st.lists(st.integers(0, classes - 1), min_size=m, max_size=m)))
    soft = calibrate_soft_labels(probabilities, labels, min_share=share, margin=0.05)
    assert soft.dtype == np.float32 and soft.shape == (m, classes)
    assert np.isfinite(soft).all() and (soft >= 0).all()
    assert soft.sum(axis=1) == pytest.approx(np.ones(m), abs=1e-5)
    own = soft[np.arange(m), labels]
    rivals = soft.copy()
    rivals[np.arange(m), labels] = -1
    assert (own >= share - 1e-5).all()
    assert (own - rivals.max(axis=1) >= 0.05 - 1e-5).all()
    assert (soft.argmax(axis=1) == labels).all()


def test_a_starved_class_gets_the_mass_of_its_texts_back() -> None:
    # a teacher biased against class 1 (a tenth of its due on every text): neither text
    # assigned to class 1 points to it. One weight for the class undoes the bias exactly.
    fair = np.array([[0.7, 0.3], [0.9, 0.1], [0.3, 0.7], [0.1, 0.9]])  # class 1 mass: 2
    biased = fair * np.array([1.0, 0.1])
    biased /= biased.sum(axis=1, keepdims=True)
    labels = np.array([0, 0, 1, 1])
    assert starved_classes(biased, labels).tolist() == [False, True]
    soft = calibrate_soft_labels(biased, labels, min_share=0.0, margin=0.0)
    np.testing.assert_allclose(soft, fair, rtol=1e-4)


def test_once_a_class_is_starved_every_class_gets_the_mass_of_its_texts() -> None:
    # class 2 is starved (its texts point to class 0); class 0 hoards mass: after step 1 every
    # class holds exactly its 2 texts' worth, and each text still leads with its own class
    probabilities = np.array(
        [
            [0.9, 0.05, 0.05],
            [0.8, 0.1, 0.1],
            [0.3, 0.6, 0.1],
            [0.2, 0.7, 0.1],
            [0.6, 0.1, 0.3],
            [0.5, 0.2, 0.3],
        ]
    )
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert starved_classes(probabilities, labels).tolist() == [False, False, True]
    soft = calibrate_soft_labels(probabilities, labels, min_share=0.0, margin=0.0)
    np.testing.assert_allclose(soft.sum(axis=0), [2.0, 2.0, 2.0], rtol=1e-3)
    assert (soft.argmax(axis=1) == labels).all()


def test_a_teacher_that_teaches_every_class_is_left_alone() -> None:
    # every text points to its class; class 0 holds more than its count, class 1 less, but
    # more than half of it: nothing is starved, nothing changes
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.45, 0.55], [0.4, 0.6]])
    labels = np.array([0, 0, 1, 1])
    assert not starved_classes(probabilities, labels).any()
    soft = calibrate_soft_labels(probabilities, labels, min_share=0.0)
    np.testing.assert_allclose(soft, probabilities, rtol=1e-5)


def test_starved_means_mostly_pointing_elsewhere_or_under_half_the_mass() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    rows = [[0.8, 0.1, 0.1], [0.8, 0.1, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]]
    rows += [[0.1, 0.1, 0.8], [0.1, 0.1, 0.8]]
    half = np.array(rows)  # one of the two class-1 texts points to it: half is enough
    assert starved_classes(half, labels).tolist() == [False, False, False]
    half[3] = [0.6, 0.3, 0.1]  # now neither does
    assert starved_classes(half, labels).tolist() == [False, True, False]
    # class 1's texts point to it, but its mass over the set, 0.76, is under half of 2
    light = np.array([[0.98, 0.01, 0.01]] * 2 + [[0.34, 0.36, 0.30]] * 2 + [[0.0, 0.02, 0.98]] * 2)
    assert starved_classes(light, labels).tolist() == [False, True, False]


def test_a_row_pointing_elsewhere_is_mixed_with_its_label_keeping_the_rest_in_proportion() -> None:
    # classes of equal mass (two texts each, mirrored rows): step 1 changes nothing
    probabilities = np.array([[0.6, 0.3, 0.1], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8]] * 2)
    labels = np.array([1, 0, 2, 1, 0, 2])
    soft = calibrate_soft_labels(probabilities, labels, min_share=0.5)
    # the smallest mixing weight w with (1 - w) 0.3 + w >= 0.5 is 2/7; it also gives the lead
    weight = 2 / 7
    expected = [(1 - weight) * 0.6, 0.5, (1 - weight) * 0.1]
    np.testing.assert_allclose(soft[0], expected, rtol=1e-4)
    assert soft[0, 1] - soft[0, 0] >= 0.05


def test_bad_shapes_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="expected probabilities"):
        calibrate_soft_labels(np.ones((2, 2)) / 2, np.array([0]))
    with pytest.raises(ValueError, match="min_share and margin"):
        calibrate_soft_labels(np.ones((1, 2)) / 2, np.array([0]), min_share=1.5)
    with pytest.raises(ConfigError, match="unknown calibration 'soft'"):
        TeacherConfig(calibration="soft")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="label_share"):
        TeacherConfig(label_share=1.0)


def _biased_teacher_selection(calibration: str) -> tuple[np.ndarray, np.ndarray]:
    """Texts of a pool chosen for a teacher biased against class 2: its logits for class 2 are
    lowered so much that no text has it as argmax, so the texts assigned to class 2 (every
    class gets k) carry soft labels pointing elsewhere unless calibrated."""
    members, member_labels, pool, _ = _blobs(seed=4, n=90)
    x = torch.from_numpy(pool)
    centers = torch.stack([torch.from_numpy(members[member_labels == c].mean(0)) for c in range(3)])
    logits = 8.0 * x @ centers.T
    logits[:, 2] -= 20.0
    config = TeacherConfig(reference=60, calibration=calibration)  # type: ignore[arg-type]
    chosen = select_for_teacher(x, logits, per_class=3, config=config, seed=0)
    return chosen.soft_labels, chosen.labels


def test_teacher_soft_labels_point_to_their_class_only_when_calibrated() -> None:
    soft, labels = _biased_teacher_selection("balanced")
    assert (soft.argmax(axis=1) == labels).all()
    assert (soft[np.arange(len(labels)), labels] >= DEFAULT_LABEL_SHARE - 1e-6).all()
    raw, raw_labels = _biased_teacher_selection("none")
    np.testing.assert_array_equal(raw_labels, labels)  # the same texts and classes
    assert not (raw.argmax(axis=1) == raw_labels)[raw_labels == 2].any()  # the failure it fixes


def test_kip_releases_calibrated_learned_soft_labels() -> None:
    x, y, _, _ = _blobs()
    options = {"iterations": 5, "learning_rate": 0.2}  # a large step moves the labels far
    calibrated = distill("kip", DistillInput(x, y, 3, per_class=3, seed=1, options=options))
    raw = distill(
        "kip",
        DistillInput(x, y, 3, per_class=3, seed=1, options={**options, "calibration": "none"}),
    )
    assert calibrated.soft_labels is not None and raw.soft_labels is not None
    np.testing.assert_array_equal(calibrated.embeddings, raw.embeddings)  # only labels change
    rows = np.arange(len(calibrated.labels))
    assert (calibrated.soft_labels.argmax(axis=1) == calibrated.labels).all()
    assert (calibrated.soft_labels[rows, calibrated.labels] >= DEFAULT_LABEL_SHARE - 1e-6).all()
    expected = calibrate_soft_labels(raw.soft_labels, raw.labels)
    np.testing.assert_allclose(calibrated.soft_labels, expected, rtol=1e-6)
