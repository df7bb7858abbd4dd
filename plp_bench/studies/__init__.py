"""Measurements that are not a run of the grid: the ODE paper's table of gradient descent
against the linearised model (``ode_comparison``), training the introspection network from
weight histories (``introspection_net``) and images per second of the CIFAR backbones
(``image_throughput``).
"""

LAYER = 6
