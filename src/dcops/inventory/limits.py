"""How much input the inventory loader accepts before it refuses, and why these numbers.

An inventory is typed by people, so a real one is small; these limits exist so that a wrong
or hostile folder (a file of millions of list items, a YAML alias bomb, a FIFO named
``x.yml``, a multi-gigabyte log renamed by mistake) ends in a problem naming the file and line
within seconds and in bounded memory, instead of a hang or a ``MemoryError``.

What a real province needs (measured on ``inventory/yenbai``, the real province with its
published figures): 15 files, 106 KB, about 7,900 YAML nodes, the largest file 18 KB, nested 6
levels deep. Its 3,319 mailboxes, written by ``dcops mail`` one line each (about 100 bytes and
9 nodes per account) add 330 KB and 30,000 nodes, whether in one file or one file per agency.

The limits, each with its headroom over that worst real case (about 40,000 nodes, 440 KB, the
largest file 330 KB when every account sits in one file):

- :data:`MAX_FILE_BYTES` 4 MiB per file: 12 times the all-accounts-in-one-file case. Checked
  with ``stat`` before reading, and at most this many bytes plus one are ever read.
- :data:`MAX_TOTAL_BYTES` 16 MiB for the whole folder: about 36 times the province.
- :data:`MAX_FILES` 2,000 data files: the province has 15, plus one file per mail agency (42).
- :data:`MAX_NODES` 200,000 YAML nodes (every key, value and list item) for the whole folder,
  counted with aliases expanded (an alias costs what it copies) and before anything is built:
  5 times the province with all its accounts (50,000 accounts would fit). This is the time
  bound: the loader spends 10-25 microseconds per node (parse, build, validate, check), so a
  folder at the limit takes 2-5 seconds, more on a loaded machine. An alias bomb of nine
  aliases nested nine deep would expand to 387 million nodes; it is refused after reading a
  few hundred.
- :data:`MAX_DEPTH` 64 levels of nesting (aliases expanded): the province uses 6; this keeps
  every recursive step afterwards (validation, copies, error messages) far from Python's
  recursion limit.
- :data:`MAX_INT_DIGITS` 100 digits in an integer: counts, ports and quotas need at most 10;
  this keeps every number cheap to convert and print (Python refuses above 4,300 digits).
- :data:`MAX_PROBLEMS` 1,000 problems listed: a file of junk can hold hundreds of thousands
  of wrong items, and nobody reads past the first screens; the rest are counted in one line.
- :data:`REPR_CHARS` 60 characters of a value quoted back in a message (``got '...'``).
"""

from __future__ import annotations

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_FILES = 2_000
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_INT_DIGITS = 100
MAX_PROBLEMS = 1_000
REPR_CHARS = 60


def human_bytes(n: int) -> str:
    """A byte count for a message: ``3 GiB``, ``9.5 MiB``, ``812 bytes``."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            v = n / (1 << shift)
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.1f} {unit}"
    return f"{n:,} bytes"
