"""Re-execute a recorded notebook run's cells in a fresh kernel (``python -m`` this module).

Usage: ``python -m reprolog._reproduce._notebook CELLS.json CWD``. The cells are those the
record's ``notebook`` section lists, in the order they ran; nbclient runs them in a new
``python3`` kernel of this interpreter whose working directory is CWD and which inherits this
process's environment (so the re-run's bookkeeping variables reach ``reprolog.init``).
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Run the cells; 0 when every cell ran, 1 when one raised (its error on stderr)."""
    if len(argv) != 2:
        print("usage: python -m reprolog._reproduce._notebook CELLS.json CWD", file=sys.stderr)
        return 2
    try:
        import nbclient
        import nbformat
    except ImportError as exc:
        print(f"re-running a notebook needs nbclient and ipykernel: {exc}", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        cells = json.load(fh)
    notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    new_cell = nbformat.v4.new_code_cell
    notebook.cells = [new_cell(str(source)) for source in cells]  # type: ignore[no-untyped-call]
    client = nbclient.NotebookClient(
        notebook, timeout=None, kernel_name="python3", resources={"metadata": {"path": argv[1]}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
