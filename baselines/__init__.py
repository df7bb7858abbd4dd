"""Methods PLP is compared with, as plain PyTorch / SciPy objects independent of the harness."""
