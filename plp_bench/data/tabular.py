"""Readers for the UCI tabular files in their original comma-separated form.

Banknote Authentication (Lohweg, 2013): 4 numeric features, class 0/1 in the last column.
MAGIC Gamma Telescope (Bock, 2007): 10 numeric features, class ``g`` (gamma, label 0) or ``h``
(hadron, label 1) in the last column. Both are read with or without a header line and with LF
or CRLF line ends; any malformed line is reported with its file and line number.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import DataError


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_delimited(
    path: Path, *, n_features: int, labels: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Features (float64, ``(rows, n_features)``) and integer labels of a UCI CSV file.

    The label is the last field; ``labels`` maps its text to the class index. A first line
    whose feature fields are not all numbers is taken as a header and skipped.
    """
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text file ({err})") from None
    rows: list[list[float]] = []
    targets: list[int] = []
    n_fields = n_features + 1
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != n_fields:
            raise DataError(
                f"{path}:{number}: expected {n_fields} comma-separated fields, found {len(fields)}"
            )
        if not rows and number == 1 and not all(_is_number(f) for f in fields[:-1]):
            continue  # header line
        try:
            rows.append([float(f) for f in fields[:-1]])
        except ValueError:
            raise DataError(f"{path}:{number}: a feature is not a number: {line!r}") from None
        label = fields[-1]
        if label not in labels:
            allowed = ", ".join(map(repr, labels))
            raise DataError(f"{path}:{number}: class {label!r} is not one of {allowed}")
        targets.append(labels[label])
    if not rows:
        raise DataError(f"{path}: no data rows")
    return np.asarray(rows, dtype=np.float64), np.asarray(targets, dtype=np.int64)
