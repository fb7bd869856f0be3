"""Griffe extension: the reST of rnnlab's docstrings as Markdown, for the API reference.

The docstrings are written for reading in the source and in ``help()``: Sphinx roles
(:class:`x`), ``.. math::`` blocks and double-backquoted literals. This rewrites them in the
rendered reference only (the source is untouched): roles and ````x```` become code spans,
a ``.. math::`` block becomes a display formula typeset by KaTeX, and ``Example::``
before an indented block loses its second colon (the block is code in Markdown too).
"""

from __future__ import annotations

import re
import textwrap

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
LITERAL = re.compile(r"``([^`]+)``")
LITERAL_BLOCK = re.compile(r"(\S)::$", re.M)  # "Example::" before an indented block
MATH = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*\n(?P<body>(?:(?P=indent)[ \t]+.*\n|[ \t]*\n)+)",
                  re.M)


def _math(match: re.Match) -> str:
    body = textwrap.dedent(match.group("body")).strip()
    return f"\n$$\n{body}\n$$\n\n"


def markdown(text: str) -> str:
    """The Markdown form of one docstring."""
    text = MATH.sub(_math, text if text.endswith("\n") else text + "\n")
    text = ROLE.sub(r"`\1`", text)
    text = LITERAL_BLOCK.sub(r"\1:", text)
    return LITERAL.sub(r"`\1`", text).rstrip("\n")


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring when griffe has loaded its object."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
