"""Nominal (unordered) factors are a property of each ground-truth dataset; Chen's MIG leaves them out on "auto"."""

import numpy as np
import pytest

from nsvae import data, metrics
from nsvae.data import images
from nsvae.data.base import GroundTruthData
from nsvae.data.dsprites import DSprites
from nsvae.data.factor_grid import FactorGrid
from nsvae.data.variants import DSpritesVariant, ScreamDSprites
from nsvae.metrics.chen_mig import resolve_excluded
from nsvae.metrics.utils import MetricInputError

from .toy import ToyData, posterior_identity

# Every registered ground-truth dataset: its exposed factors' nominal subset. A new ground-truth dataset must be
# added here (test_every_registered_dataset_is_listed), so its nominal factors are decided, not defaulted.
EXPECTED_NOMINAL = {
    "dsprites": ("shape",),
    "dsprites_noshape": (),  # shape is hidden (drawn per sample), so no exposed factor is nominal
    "color_dsprites": ("shape",),
    "noisy_dsprites": ("shape",),
    "scream_dsprites": ("shape",),
}
#: The datasets read from the user's files (nsvae.data.ground_truth_files): one class whose name comes from its
#: cache entry, so they are listed by dataset name and built from their declarations.
EXPECTED_FILE_NOMINAL = {
    "shapes3d": ("shape",),
    "mpi3d_toy": ("object_color", "object_shape", "background_color"),
    "mpi3d_realistic": ("object_color", "object_shape", "background_color"),
    "mpi3d_real": ("object_color", "object_shape", "background_color"),
    "mpi3d_complex": ("object_color", "object_shape", "background_color"),
    "smallnorb": ("category", "lighting"),  # the instance is a nuisance factor, hidden from the metrics
    "cars3d": ("car",),
    "falcor3d": (),  # light intensity, light direction and camera position are all on a scale
    "isaac3d": ("object_shape",),  # the colours blend one into another in steps: ordered
}


def ground_truth_classes():
    found, todo = {}, [GroundTruthData]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        # FactorGrid (synthetic codes for metric checks) takes its nominal factors as a constructor argument
        if cls.__module__.startswith("nsvae.data.") and cls.name and cls is not FactorGrid:
            found[cls.name] = cls
    return found


def unloaded_dsprites():
    """A DSprites whose images are not read: the factor declarations need no cache."""
    return DSprites.__new__(DSprites)


def make(name):
    cls = ground_truth_classes()[name]
    if cls is DSprites:
        return unloaded_dsprites()
    if cls is ScreamDSprites:
        return cls(unloaded_dsprites(), np.zeros((80, 90, 3), np.float32))
    assert issubclass(cls, DSpritesVariant)
    return cls(unloaded_dsprites())


def test_every_registered_dataset_is_listed():
    from nsvae.data.ground_truth_files import DATASETS

    assert set(ground_truth_classes()) == set(EXPECTED_NOMINAL)
    assert set(DATASETS) == set(EXPECTED_FILE_NOMINAL)
    # the rest are image-only sets
    assert set(data.names()) == set(EXPECTED_NOMINAL) | set(EXPECTED_FILE_NOMINAL) | set(images.ENTRIES)


@pytest.mark.parametrize("name", sorted(EXPECTED_FILE_NOMINAL))
def test_nominal_factors_of_each_file_dataset(name):
    from nsvae.data.ground_truth_files import declared

    ds = declared(name)
    assert set(ds.all_nominal_factors) <= set(ds.all_factor_names)
    assert ds.nominal_factors == EXPECTED_FILE_NOMINAL[name]
    assert resolve_excluded(ds, "auto") == EXPECTED_FILE_NOMINAL[name]


@pytest.mark.parametrize("name", sorted(EXPECTED_NOMINAL))
def test_nominal_factors_of_each_dataset(name):
    ds = make(name)
    assert ds.name == name
    assert ds.all_nominal_factors == ("shape",)  # all are dSprites' images and factors
    assert set(ds.all_nominal_factors) <= set(ds.all_factor_names)
    assert ds.nominal_factors == EXPECTED_NOMINAL[name]
    assert resolve_excluded(ds, "auto") == EXPECTED_NOMINAL[name]
    assert resolve_excluded(ds, ()) == ()  # an explicit empty list keeps every factor


def test_a_variant_not_named_dsprites_still_excludes_shape():
    color = make("color_dsprites")
    assert not color.name.startswith("dsprites")
    assert resolve_excluded(color, "auto") == ("shape",)


def test_no_nominal_factors_by_default_whatever_the_name():
    toy = ToyData((3, 4), names=("shape", "posX"))
    toy.name = "dsprites_lookalike"  # the name no longer decides
    assert toy.nominal_factors == () and resolve_excluded(toy, "auto") == ()
    with pytest.raises(MetricInputError, match="unknown factor"):
        resolve_excluded(toy, ["colour"])


class Kinds(ToyData):
    """A toy set whose first factor is categorical, under a name unrelated to dSprites."""

    name = "kinds"
    all_nominal_factors = ("kind",)


def test_chen_mig_auto_leaves_out_the_nominal_factors():
    ds = Kinds((3, 4, 5), names=("kind", "size", "position"))
    rng = np.random.default_rng(0)
    auto = metrics.chen_mig(ds, posterior_identity(0.05), rng, num_samples=500)
    assert auto["factors_used"] == ["size", "position"] and auto["protocol"]["exclude_factors"] == ["kind"]
    every = metrics.chen_mig(ds, posterior_identity(0.05), rng, num_samples=500, exclude_factors=[])
    assert every["factors_used"] == ["kind", "size", "position"]
