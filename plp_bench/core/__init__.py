"""The foundations every other layer stands on: validated configuration and its one error
type and "did you mean" (``config``), named registries (``registry``), the run record and its
atomic writes (``record``), what a run's execution settings are (``execution_settings``), the
environment a record carries (``environment``), statistics (``stats``) and the one table model
that the terminal and the HTML page both render (``tables``). Nothing here knows a dataset, a
model or a method.
"""

LAYER = 1
