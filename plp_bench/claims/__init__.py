"""The papers' headline claims re-measured: the registry ``claims.yaml`` and its reader
(``registry``), the verdict rule (``verdicts``), the paired runs that measure each claim
(``measurement``) and the verdict table (``report``).
"""

LAYER = 7
