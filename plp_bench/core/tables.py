"""One table model, two renderings: a rich ``Table`` for the terminal and the HTML report.

Cells carry plain text and a semantic style (the best value of a column, a change beyond the
noise in either direction, a warning), so the terminal and the page show the same numbers and
the same highlights from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rich.markup import escape
from rich.table import Table

Style = Literal["best", "better", "worse", "warn"] | None

RICH_STYLES = {"best": "bold green", "better": "green", "worse": "bold red", "warn": "red"}


@dataclass(frozen=True)
class Cell:
    text: str
    style: Style = None


@dataclass(frozen=True)
class Column:
    header: str
    numeric: bool = True


@dataclass
class TableData:
    title: str
    columns: list[Column]
    rows: list[list[Cell]] = field(default_factory=list)
    caption: str = ""

    def add_row(self, *cells: Cell | str) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([c if isinstance(c, Cell) else Cell(c) for c in cells])

    @classmethod
    def from_columns(cls, title: str, columns: list[tuple[Column, list[Cell]]],
                     caption: str = "") -> TableData:
        """A table built column by column (each column with its cells, top to bottom)."""
        table = cls(title, [column for column, _ in columns], caption=caption)
        for cells in zip(*(cells for _, cells in columns), strict=True):
            table.add_row(*cells)
        return table

    def column(self, header: str) -> list[Cell]:
        index = [c.header for c in self.columns].index(header)
        return [row[index] for row in self.rows]


def to_rich(table: TableData) -> Table:
    """The table as rich renders it: text escaped, styles as colours, first column unwrapped."""
    out = Table(title=table.title, caption=table.caption or None, title_justify="left",
                caption_justify="left")
    for i, column in enumerate(table.columns):
        out.add_column(column.header, justify="right" if column.numeric else "left",
                       no_wrap=i == 0)
    for row in table.rows:
        out.add_row(*(f"[{RICH_STYLES[c.style]}]{escape(c.text)}[/]" if c.style
                      else escape(c.text) for c in row))
    return out
