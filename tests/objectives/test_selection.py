"""greedy_select against a literal transcription of the original scan.

The scan: docs/reference/original-implementation.md §1.5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nsvae.objectives.nonsyn import greedy_select, sorted_select


def literal_scan(k: list[float], omega: float) -> tuple[list[int], list[int]]:
    """The original loop as written: d rounds, each scanning every unselected latent in index order.

    The subset value I(S ∪ {j}) is computed as a fresh sum over the subset, as
    the original recomputed the subset KL for every candidate.
    """
    d = len(k)
    selected: list[int] = []
    total = 0.0
    for _ in range(d):
        candidates = [j for j in range(d) if j not in selected]
        theta = total
        pick = None
        for j in candidates:
            value = sum(k[i] for i in selected + [j])
            accept = (value > theta) if not selected else (omega * value > theta)
            if accept:
                pick = j
                theta = value
        if pick is not None:
            selected.append(pick)
            total = theta
    worst = [j for j in range(d) if j not in selected]
    return selected, worst


def random_vectors(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        kind = i % 5
        d = int(rng.integers(1, 13)) if i % 7 else 10
        if kind == 0:  # uniform
            v = rng.uniform(0, 4, d)
        elif kind == 1:  # heavy-tailed
            v = np.abs(rng.standard_cauchy(d))
        elif kind == 2:  # few large, many tiny (a trained model)
            v = np.where(rng.random(d) < 0.4, rng.uniform(1, 4, d), rng.uniform(0, 0.05, d))
        elif kind == 3:  # ties
            v = rng.choice([0.0, 0.1, 0.5, 1.0, 2.0], size=d)
        else:  # near the acceptance threshold
            v = rng.exponential(1.0, d).round(2)
        out.append(v)
    return out


@pytest.mark.parametrize("omega", [0.9, 0.8, 0.5, 0.99])
def test_matches_the_literal_scan_on_random_vectors(omega):
    rng = np.random.default_rng(int(omega * 100))
    vectors = random_vectors(rng, 10_000 if omega == 0.9 else 2_500)
    for v in vectors:
        k = v.tolist()
        assert greedy_select(k, omega) == literal_scan(k, omega), (k, omega)


@pytest.mark.parametrize(
    "k, omega, best, worst",
    [
        # Worked example 1.
        ([0.02, 3.1, 0.01, 2.5, 0.05, 1.2, 0.30, 0.03, 0.9, 0.04], 0.9, [1, 3, 5, 8], [0, 2, 4, 6, 7, 9]),
        # Worked example 2: a replacement inside a round; the same with omega 0.8.
        ([0.5, 0.3, 4.0, 0.6, 2.0, 0.01, 0.02, 0.0, 0.05, 0.1], 0.9, [2, 4], [0, 1, 3, 5, 6, 7, 8, 9]),
        ([0.5, 0.3, 4.0, 0.6, 2.0, 0.01, 0.02, 0.0, 0.05, 0.1], 0.8, [2, 4], [0, 1, 3, 5, 6, 7, 8, 9]),
        # Worked example 3: the literal rule keeps the smaller, lower-index latent.
        ([1.0, 0.112, 0.115, 0, 0, 0, 0, 0, 0, 0], 0.9, [0, 1], [2, 3, 4, 5, 6, 7, 8, 9]),
        # All equal: the tenth fails by exact equality under the strict >.
        ([1.0] * 10, 0.9, [0, 1, 2, 3, 4, 5, 6, 7, 8], [9]),
        # Nothing positive: nothing selected.
        ([0.0] * 4, 0.9, [], [0, 1, 2, 3]),
    ],
)
def test_worked_examples(k, omega, best, worst):
    assert greedy_select(k, omega) == (best, worst)
    assert literal_scan(k, omega) == (best, worst)


def test_worked_example_1_synergy_value():
    k = [0.02, 3.1, 0.01, 2.5, 0.05, 1.2, 0.30, 0.03, 0.9, 0.04]
    _, worst = greedy_select(k, 0.9)
    assert sum(k[j] for j in worst) == pytest.approx(0.45)


def test_sorted_rule_differs_where_the_original_says():
    k = [1.0, 0.112, 0.115, 0, 0, 0, 0, 0, 0, 0]
    best, worst = sorted_select(k, 0.9)
    assert sorted(best) == [0, 2] and worst == [1, 3, 4, 5, 6, 7, 8, 9]
    # Example 1: the sorted rule agrees.
    k1 = [0.02, 3.1, 0.01, 2.5, 0.05, 1.2, 0.30, 0.03, 0.9, 0.04]
    assert sorted(sorted_select(k1, 0.9)[0]) == [1, 3, 5, 8]


def test_sorted_rule_disagrees_on_trained_like_vectors_as_measured_by_the_reference():
    # "Trained-like" K: 5 latents in [1, 4], 5 in [0, 0.05], shuffled; the reference measured 6.6%.
    rng = np.random.default_rng(0)
    vectors = [rng.permutation(np.concatenate([rng.uniform(1, 4, 5), rng.uniform(0, 0.05, 5)])) for _ in range(20000)]
    differ = np.mean([set(greedy_select(v, 0.9)[0]) != set(sorted_select(v, 0.9)[0]) for v in vectors])
    assert 0.055 < differ < 0.075


def test_accepts_tensors_and_rejects_bad_input():
    k = torch.tensor([0.1, 2.0, 0.05], dtype=torch.float32)
    assert greedy_select(k, 0.9) == greedy_select(k.double().tolist(), 0.9)
    with pytest.raises(ValueError, match="omega"):
        greedy_select([1.0], 1.0)
    with pytest.raises(ValueError, match="finite"):
        greedy_select([1.0, float("nan")], 0.9)
