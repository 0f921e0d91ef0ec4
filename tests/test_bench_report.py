"""The benchmark tables: what the terminal shows must be the numbers, whole."""

from __future__ import annotations

from rich.console import Console

from benchmarks.report import markdown_table, rich_table


def test_ten_columns_of_numbers_fit_an_80_column_terminal_uncut() -> None:
    header = ("level", "n", "fakes", "AUC", "acc", "prec", "recall", "F1", "false-FAKE", "EER")
    rows = [
        ["video_mean", "9", "6", "0.556", "0.333", "n/a", "0.000", "n/a", "0.000", "0.667"],
        ["window", "613", "395", "0.618", "0.370", "0.629", "0.056", "0.102", "0.060", "0.423"],
    ]
    console = Console(width=80, record=True, color_system=None)
    console.print(rich_table("a title long enough to wrap on a narrow terminal " * 2, header, rows))
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    for row in rows:
        line = next(line for line in text.splitlines() if line.startswith(row[0]))
        assert line.split() == row


def test_markdown_table_rows() -> None:
    assert markdown_table(("a", "b"), [["1", "2"]]) == "| a | b |\n|---|---|\n| 1 | 2 |\n"
