"""Figures of trained models: latent traversals (:mod:`.traversals`), mean-activation plots (:mod:`.mean_activation`).

The submodules are imported on use, so ``nsvae.viz`` itself pulls in neither torch nor matplotlib.
"""
