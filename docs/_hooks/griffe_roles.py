"""Griffe extension for the API page: the docstrings' reStructuredText bits in Markdown.

The library's docstrings use Sphinx roles (``:class:`Session```, ``:meth:`~x.y```) and
``.. code-block::``, which Markdown would show as they are: roles become code spans (the last
dotted part under ``~``), code blocks become fenced ones.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

ROLE = re.compile(r":(?:class|meth|func|data|attr|mod|exc):`(~?)([^`]+)`")
CODE_BLOCK = re.compile(r"^(\s*)\.\. code-block:: *(\w+)\n\n((?:\1 {4}.*\n|\n)+)", re.MULTILINE)


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def _code_block(match: re.Match[str]) -> str:
    indent, language, body = match.groups()
    lines = [line[len(indent) + 4 :] for line in body.rstrip("\n").split("\n")]
    return (
        f"{indent}```{language}\n"
        + "\n".join(f"{indent}{line}" if line else "" for line in lines)
        + f"\n{indent}```\n\n"
    )


def markdown_docstring(text: str) -> str:
    text = CODE_BLOCK.sub(_code_block, text if text.endswith("\n") else text + "\n")
    return ROLE.sub(_role, text).rstrip("\n")


class RestToMarkdown(Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
