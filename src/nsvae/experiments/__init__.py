"""Many runs of the pipeline: sweeps (:mod:`.sweep`, :mod:`.executors` and its planning, worker and pools) and
studies (:mod:`.study`, :mod:`.study_analysis`, :mod:`.looks`). The typed run config and its presets live one layer
lower, in :mod:`nsvae.config`.
"""
