"""Isaac3D (Nie et al., ICML 2020): a robot arm and an object in a kitchen, 9 factors, 737,280 images.

From NVIDIA's release (https://github.com/NVlabs/High-res-disentanglement-datasets),
its 128x128 version: a 13 GB zip holding ``Isaac3D_down128/images/NNNNNN.png``
(737,280 RGB PNGs) and ``Isaac3D_down128/labels.npy`` (shape ``(737280, 9)``,
the factor values in [0, 1]). Factors in storage order, the last fastest:
object shape 3, robot x movement 8, robot y movement 5, camera height 4,
object scale 4, lighting intensity 4, lighting y direction 6, object colour 4,
wall colour 4. That order is the release's own ``dataset_demo.py`` and the
strides of its README's index formula (245760, 30720, 6144, 1536, 384, 96,
16, 4, 1); the names the README writes beside those strides are in another
order that does not fit them. Read and reduced to 64x64 by
:mod:`nsvae.data.png_release`.
"""

from __future__ import annotations

from . import ground_truth_files as gtf
from . import png_release

FACTOR_NAMES = (
    "object_shape",
    "robot_x_move",
    "robot_y_move",
    "camera_height",
    "object_scale",
    "lighting_intensity",
    "lighting_y_dir",
    "object_color",
    "wall_color",
)
FACTOR_SIZES = (3, 8, 5, 4, 4, 4, 6, 4, 4)
README_URL = "https://github.com/NVlabs/High-res-disentanglement-datasets"
#: The README's link to the 128x128 version ("Isaac3D_128x128 (13 GB)").
DOWNLOAD = "https://drive.google.com/uc?export=download&id=1OmQ1G2wnm6eTsSFGTKFZZAh5D3nQTW1B"

RELEASE = png_release.Release(folder="Isaac3D_down128", labels_file="labels.npy")
LAYOUT = gtf.Layout(
    name="official",
    factor_sizes=FACTOR_SIZES,
    factor_values=None,  # the label values, read from the release
    description="the official 3 x 8 x 5 x 4 x 4 x 4 x 6 x 4 x 4 grid, 737,280 images",
)

DATASET = gtf.FileDataset(
    name="isaac3d",
    title="Isaac3D",
    summary="Isaac3D (Nie et al. 2020): 737,280 RGB images, 128x128 reduced to 64x64, 9 factors "
    "(from your Isaac3D_down128 folder or its zip)",
    file_name=RELEASE.folder,
    source_url=f"{README_URL} (the Isaac3D_128x128 zip, 13 GB: {DOWNLOAD})",
    factor_names=FACTOR_NAMES,
    # The three object shapes are categories. The colours are ordered: the release's traversals
    # (examples/isaac3d_samples/c7_, c8_) blend one colour into another in 4 steps (blue to white, green to pink).
    nominal_factors=("object_shape",),
    layouts=(LAYOUT,),
    open_file=RELEASE.open_file,
    directory_files=RELEASE.directory_files,
    from_hint=RELEASE.folder,
)

ENTRY = gtf.register_file_dataset(DATASET)
