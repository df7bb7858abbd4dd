"""One run, from a workload, a method and a seed to a record. ``entry.run`` sends a method to
its kind of run: trained by its optimizer (``training``, its phases on the clock of ``clock``
and scored by ``scoring``) or solved as the linearised model's ODE (``solving``). Both follow
``protocol`` (seed streams, the initial model, the budget, the run's identity) on a device
checked by ``device``, with the execution settings applied by ``execution``.
"""

LAYER = 5
