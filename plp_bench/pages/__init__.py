"""The HTML report: one page per commit and the index of every commit with its trends
(``html``, from the Jinja2 ``templates``).
"""

LAYER = 8
