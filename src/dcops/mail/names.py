"""What a mailbox's display name may hold: text that YAML carries and every mail client shows as typed.

A display name is a person's name (and title), Vietnamese, in UTF-8. It is refused, with the
character's position and what goes wrong, when it holds:

- what YAML cannot carry: control characters (C0 but tab and line breaks, DEL, C1), the
  noncharacters U+FFFE and U+FFFF, lone UTF-16 surrogates (bytes that were not UTF-8);
- line breaks of any kind (LF, CR, NEL, U+2028, U+2029): YAML reads them as the end of a line and
  a mail header cannot hold one; tabs;
- what a mail client shows garbled or not at all: other noncharacters (U+FDD0-U+FDEF, U+nFFFE/F),
  unassigned code points, private-use characters (a font's own glyphs), invisible format
  characters (a byte-order mark or zero-width character in the middle, soft hyphens), bidirectional
  controls (they reorder the text around them), a combining mark with no letter to sit on, more
  than three combining marks on one letter (Vietnamese needs two at most);
- more than :data:`MAX_LENGTH` characters.
"""

from __future__ import annotations

import unicodedata

#: A name with its title fits in far fewer; mail clients and address books cut long names.
MAX_LENGTH = 128
#: Combining marks on one letter: Vietnamese stacks two at most (ệ = e + circumflex + dot below).
MAX_MARKS = 3
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ZERO_WIDTH = frozenset("\u180e\u200b\u200c\u200d\u2060")
_UNSEEN = "invisible: the name looks right but does not match, sort or search as it is typed"


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE


def _why(c: str, before: str, marks: int) -> str | None:
    """What is wrong with character ``c`` after ``before`` (``marks``: combining marks just before it)."""
    cp, cat = ord(c), unicodedata.category(c)
    if cat == "Cs":
        return "half of a UTF-16 surrogate pair, not a character (the text was not UTF-8): YAML cannot carry it"
    if _is_noncharacter(cp):
        yaml = "YAML cannot carry it and " if cp in (0xFFFE, 0xFFFF) else ""
        return f"a Unicode noncharacter, never text: {yaml}a mail client shows a box or '?'"
    if c in _LINE_BREAKS:
        return "a line break: YAML reads it as the end of the line, and a mail header cannot hold one"
    if c == "\t":
        return "a tab: mail clients show a gap or nothing (use a space)"
    if cat == "Cc":
        c1 = " (a C1 control: Windows-1252 text read as Latin-1?)" if 0x80 <= cp <= 0x9F else ""
        return f"a control character{c1}: YAML cannot carry it and a mail client shows nothing or a box"
    if c == "\ufeff":
        return f"a byte-order mark inside the name (two files joined?), {_UNSEEN}"
    if c in _ZERO_WIDTH:
        return f"a zero-width character, {_UNSEEN}"
    if c in _BIDI:
        return "a bidirectional control: mail clients show the text around it reordered (a spoofing trick)"
    if cat == "Cf":
        return f"a format character, {_UNSEEN}"
    if cat == "Co":
        return "a private-use character (a font's own glyph, e.g. of a VNI or TCVN3 font): other computers show a box"
    if cat == "Cn":
        return f"not a character of Unicode {unicodedata.unidata_version}: mail clients show a box"
    if cat.startswith("M"):
        if not before or unicodedata.category(before)[0] not in "LNM":
            return "a combining mark with no letter before it: mail clients draw it on a dotted circle or on the space"
        if marks >= MAX_MARKS:
            return f"more than {MAX_MARKS} combining marks on one letter: mail clients draw them over the lines around"
    return None


def display_name_problem(name: str) -> str | None:
    """Why ``name`` (already stripped) cannot be a display name, or None; see the module's docstring."""
    if not name:
        return "display name is empty"
    before, marks = "", 0
    for pos, c in enumerate(name, start=1):
        why = _why(c, before, marks)
        if why:
            label = unicodedata.name(c, "")
            return f"display name: character {pos} is U+{ord(c):04X}{' ' + label if label else ''}, {why}"
        marks = marks + 1 if unicodedata.category(c).startswith("M") else 0
        before = c
    n = len(unicodedata.normalize("NFC", name))
    if n > MAX_LENGTH:
        return (f"display name has {n} characters, more than {MAX_LENGTH}: a name and a title fit in far fewer"
                " (a pasted paragraph?), and mail clients and address books cut long names")
    return None
