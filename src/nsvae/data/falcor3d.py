"""Falcor3D (Nie et al., ICML 2020): a living room rendered under 5 x 6^6 light and camera settings.

From NVIDIA's release (https://github.com/NVlabs/High-res-disentanglement-datasets),
its 128x128 version: a 3.7 GB zip holding ``Falcor3D_down128/images/NNNNNN.png``
(233,280 RGB PNGs) and ``Falcor3D_down128/train-rec.labels`` (a ``.npy`` array
of shape ``(233280, 7)``, the factor values in [0, 1]). Factors in storage
order, the last fastest (README: ``index = lighting_intensity * 46656 + ... +
camera_z-pos``): lighting intensity 5, lighting x, y and z direction 6 each,
camera x, y and z position 6 each. All are ordered. Read and reduced to 64x64
by :mod:`nsvae.data.png_release`.
"""

from __future__ import annotations

from . import ground_truth_files as gtf
from . import png_release

FACTOR_NAMES = (
    "lighting_intensity",
    "lighting_x_dir",
    "lighting_y_dir",
    "lighting_z_dir",
    "camera_x_pos",
    "camera_y_pos",
    "camera_z_pos",
)
FACTOR_SIZES = (5, 6, 6, 6, 6, 6, 6)
README_URL = "https://github.com/NVlabs/High-res-disentanglement-datasets"
#: The README's link to the 128x128 version ("Falcor3D_128x128 (3.7 GB)").
DOWNLOAD = "https://drive.google.com/uc?export=download&id=1XAQfFK1x6cpN1eiovbP0hVfLTm5SsSoJ"

RELEASE = png_release.Release(folder="Falcor3D_down128", labels_file="train-rec.labels")
LAYOUT = gtf.Layout(
    name="official",
    factor_sizes=FACTOR_SIZES,
    factor_values=None,  # the label values, read from the release
    description="the official 5 x 6 x 6 x 6 x 6 x 6 x 6 grid, 233,280 images",
)

DATASET = gtf.FileDataset(
    name="falcor3d",
    title="Falcor3D",
    summary="Falcor3D (Nie et al. 2020): 233,280 RGB images, 128x128 reduced to 64x64, 7 factors "
    "(from your Falcor3D_down128 folder or its zip)",
    file_name=RELEASE.folder,
    source_url=f"{README_URL} (the Falcor3D_128x128 zip, 3.7 GB: {DOWNLOAD})",
    factor_names=FACTOR_NAMES,
    # Light intensity, light direction and camera position are all quantities on a scale.
    nominal_factors=(),
    layouts=(LAYOUT,),
    open_file=RELEASE.open_file,
    directory_files=RELEASE.directory_files,
    from_hint=RELEASE.folder,
)

ENTRY = gtf.register_file_dataset(DATASET)
