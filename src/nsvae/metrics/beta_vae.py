"""The β-VAE score (Higgins et al. 2017, "β-VAE: Learning basic visual concepts with a constrained
variational framework", ICLR 2017).

One training point: pick a factor ``k`` uniformly, draw ``L`` pairs of
observations that share the class of ``k`` (everything else random), encode
both, and average the absolute code differences over the pairs. A linear
classifier predicts ``k`` from that vector; the score is its accuracy on held
out points. Chance is ``1 / num_factors``.

Protocols (:mod:`.protocols`): ``default`` = disentanglement_lib (L = 64,
10,000 / 5,000 points, the 2019 scikit-learn ``LogisticRegression()``: liblinear,
one-vs-rest, C = 1); ``paper`` = the same sizes with a softmax (multinomial)
linear classifier, the closest deterministic stand-in for the paper's
Adagrad-trained linear classifier.
"""

from __future__ import annotations

import numpy as np

from .protocols import resolve
from .utils import MetricInputError, check_ground_truth, check_score, represent_factors

REFERENCE = "Higgins et al. 2017, beta-VAE (ICLR); protocol of Locatello et al. 2019 (disentanglement_lib)"


def make_linear_classifier(kind: str, seed: int):
    """The linear classifiers the protocols name (scikit-learn, deterministic given ``seed``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if kind == "logistic_ovr":  # LogisticRegression() of scikit-learn < 0.22: liblinear, one-vs-rest
        return OneVsRestClassifier(LogisticRegression(solver="liblinear", C=1.0, random_state=seed))
    if kind == "logistic_softmax":  # today's LogisticRegression(): lbfgs, multinomial
        return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    raise MetricInputError(f"unknown classifier {kind!r}; choose logistic_ovr or logistic_softmax")


def pair_difference_features(
    data, represent, rng: np.random.Generator, num_points: int, batch_size: int, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """``(features (num_points, d), labels (num_points,))`` of the β-VAE score's training points."""
    k = data.num_factors if hasattr(data, "num_factors") else len(data.factor_sizes)
    feats, labels = [], []
    d = None
    for start in range(0, num_points, chunk):
        m = min(chunk, num_points - start)
        y = rng.integers(0, k, size=m)
        f1 = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        f2 = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, k)
        rows = np.arange(m)
        f2[rows, :, y] = f1[rows, :, y]
        z1 = represent_factors(data, represent, f1.reshape(-1, k), rng, dim=d)
        d = z1.shape[1]
        z2 = represent_factors(data, represent, f2.reshape(-1, k), rng, dim=d)
        feats.append(np.abs(z1 - z2).reshape(m, batch_size, d).mean(axis=1))
        labels.append(y)
    return np.concatenate(feats), np.concatenate(labels)


def beta_vae_score(data, represent, rng: np.random.Generator, *, protocol="default", **overrides) -> dict:
    """β-VAE score: accuracy of a linear classifier predicting the fixed factor from mean |z1 - z2|.

    Returns ``train_accuracy``, ``eval_accuracy`` and ``score`` (= eval
    accuracy), ``chance`` and ``protocol``.
    """
    check_ground_truth(data, "beta_vae_score")
    p = resolve("beta_vae_score", protocol, overrides)
    k = len(data.factor_sizes)
    if k < 2:
        raise MetricInputError("beta_vae_score needs at least two ground-truth factors to classify")
    x_train, y_train = pair_difference_features(data, represent, rng, p["num_train"], p["batch_size"])
    x_eval, y_eval = pair_difference_features(data, represent, rng, p["num_eval"], p["batch_size"])
    seed = int(rng.integers(2**31 - 1))
    if np.unique(y_train).size < 2:
        raise MetricInputError("beta_vae_score: the training points hold a single factor; raise num_train")
    model = make_linear_classifier(p["classifier"], seed)
    model.fit(x_train, y_train)
    train_acc = float(np.mean(model.predict(x_train) == y_train))
    eval_acc = float(np.mean(model.predict(x_eval) == y_eval))
    result = {
        "metric": "beta_vae_score",
        "score": eval_acc,
        "train_accuracy": train_acc,
        "eval_accuracy": eval_acc,
        "chance": 1.0 / k,
        "reference": REFERENCE,
        "protocol": p,
    }
    return check_score(result, "beta_vae_score")
