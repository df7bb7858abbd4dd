"""Many runs: the resumable grid of workloads x methods x seeds (``grid``, ``sweep``), run in
this process or as Ray tasks (``ray``), described by a YAML run config (``config_file``),
shown as rich progress bars (``progress``), and one record reproduced bit for bit
(``reproduce``).
"""

LAYER = 6
