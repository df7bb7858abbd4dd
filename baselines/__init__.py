"""Methods PLP is compared with, as plain PyTorch / SciPy objects independent of the harness,
and the base every wrapping update rule shares, PLP's included
(:class:`plp_baselines.optimizer_wrapper.OptimizerWrapper`): the harness may import this package,
never the reverse, so the one base all wrappers stand on lives here."""
