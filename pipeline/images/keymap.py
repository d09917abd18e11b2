"""Key templates: how a legacy archive path becomes an object key (``--key-template``).

A spec is either a template alone, applied to every path, or ``PATTERN -> TEMPLATE``::

    {path}                                                  (the default: keep the relative path)
    legacy/{path}
    photos/{source}/{listing}_{n}.jpg -> photos/{source}/{listing}/{n}.jpg
    **/{listing}_{n:\\d+}.{ext} -> photos/naples/{listing}/{n}.{ext|lower}
    re:^(?P<listing>[A-Z0-9]+)-(?P<n>\\d+)\\.jpe?g$ -> photos/naples/{listing}/{n}.jpg

PATTERN is matched against the whole relative path (``/``-separated):

* ``{name}`` captures one or more characters of a single path segment (greedy, so in
  ``{listing}_{n}`` the last ``_`` splits); ``{name:REGEX}`` captures what REGEX matches;
  a name used twice must capture the same text both times;
* ``*`` matches within one segment, ``**`` across segments (``**/`` also matches nothing);
* every other character is literal;
* ``re:`` starts a Python regular expression with named groups instead.

TEMPLATE is literal text with ``{field}`` or ``{field|lower}`` / ``{field|upper}``; ``{{`` and
``}}`` are literal braces. Fields are the pattern's names plus ``path`` (the relative path),
``dir`` (its folder, empty at the top), ``name`` (file name), ``stem`` and ``ext`` (without the
dot); a pattern name shadows a built-in one. Nothing else is evaluated: no attribute access,
no format specs. A mapped key must be a safe object key (no leading ``/``, no empty, ``.`` or
``..`` segments, no control characters, at most 1,024 bytes), or the file is reported failed.
A path the pattern does not match is reported as unmatched.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from pipeline.errors import SourceConfigError

_ARROW = re.compile(r"(?:^|\s+)->\s+")  # " -> ", or "-> " at the very start (no pattern)
BUILT_INS = ("path", "dir", "name", "stem", "ext")
FILTERS = {"lower": str.lower, "upper": str.upper}
MAX_KEY_BYTES = 1024
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::((?:[^{}]|\{[0-9,]*\})+))?\}")
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([a-z]+))?\}|[{}]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class KeyTemplateError(SourceConfigError):
    """The ``--key-template`` spec cannot be used; the message says which part and why."""


class UnsafeKey(ValueError):
    """A mapped key that must not be stored; the message says why."""


@dataclass(frozen=True)
class KeyMapping:
    """A parsed spec: ``map(path)`` gives the object key, or None when the pattern does not match."""

    spec: str
    pattern: re.Pattern[str] | None
    template: tuple[tuple[str, str | None, str | None], ...]  # (literal, field, filter)

    def map(self, path: str) -> str | None:
        """The key for ``path``; None when unmatched; raises ``UnsafeKey`` for an unsafe result."""
        fields = _built_ins(path)
        if self.pattern is not None:
            match = self.pattern.fullmatch(path)
            if match is None:
                return None
            fields.update({k: v for k, v in match.groupdict().items() if v is not None})
        return safe_key(self._render(fields))

    def _render(self, fields: dict[str, str]) -> str:
        out = []
        for literal, field, filter_name in self.template:
            out.append(literal)
            if field is not None:
                value = fields.get(field, "")
                out.append(FILTERS[filter_name](value) if filter_name else value)
        return "".join(out)


def parse_key_template(spec: str | None) -> KeyMapping:
    """Parse a ``--key-template`` spec (None or empty: keep the relative path)."""
    text = (spec or "").strip() or "{path}"
    if _ARROW.search(text):
        pattern_text, template_text = (part.strip() for part in _ARROW.split(text, 1))
        pattern = compile_pattern(pattern_text)
        names = set(pattern.groupindex)
    else:
        pattern, template_text, names = None, text, set()
    template = parse_template(template_text, names | set(BUILT_INS))
    return KeyMapping(text, pattern, template)


def compile_pattern(text: str) -> re.Pattern[str]:
    """A ``re:`` regular expression, or the placeholder pattern syntax, as a compiled regex."""
    if not text:
        raise KeyTemplateError("the pattern before ' -> ' is empty")
    source = text[3:] if text.startswith("re:") else _pattern_regex(text)
    try:
        compiled = re.compile(source)
    except re.error as exc:
        raise KeyTemplateError(f"the pattern {text!r} is not a valid expression: {exc}") from None
    if text.startswith("re:") and not compiled.groupindex and "{" in text:
        raise KeyTemplateError("a re: pattern names its groups (?P<name>...), not {name}")
    return compiled


def _pattern_regex(text: str) -> str:
    out, seen, pos = [], set(), 0
    while pos < len(text):
        placeholder = _PLACEHOLDER.match(text, pos)
        if placeholder:
            out.append(_group(placeholder.group(1), placeholder.group(2), seen))
            pos = placeholder.end()
        elif text.startswith("**/", pos):
            out.append(r"(?:.*/)?")
            pos += 3
        elif text.startswith("**", pos):
            out.append(r".*")
            pos += 2
        elif text[pos] == "*":
            out.append(r"[^/]*")
            pos += 1
        elif text[pos] in "{}":
            raise KeyTemplateError(f"unbalanced or malformed brace at {pos + 1} in the pattern {text!r}")
        else:
            out.append(re.escape(text[pos]))
            pos += 1
    return "".join(out)


def _group(name: str, regex: str | None, seen: set[str]) -> str:
    if name in seen:
        return f"(?P={name})"
    seen.add(name)
    return f"(?P<{name}>{regex or '[^/]+'})"


def parse_template(text: str, names: set[str]) -> tuple[tuple[str, str | None, str | None], ...]:
    """Split a template into (literal, field, filter) parts, checking every field and filter."""
    parts: list[tuple[str, str | None, str | None]] = []
    literal, pos = [], 0
    for token in _FIELD.finditer(text):
        literal.append(text[pos:token.start()])
        pos = token.end()
        if token.group(0) in ("{{", "}}"):
            literal.append(token.group(0)[0])
        elif token.group(1) is None:
            raise KeyTemplateError(f"unbalanced or malformed brace at {token.start() + 1} in the template {text!r}")
        else:
            parts.append(("".join(literal), _field(token, names, text), token.group(2)))
            literal = []
    literal.append(text[pos:])
    parts.append(("".join(literal), None, None))
    return tuple(parts)


def _field(token: re.Match[str], names: set[str], text: str) -> str:
    field, filter_name = token.group(1), token.group(2)
    if field not in names:
        known = ", ".join(sorted(names))
        raise KeyTemplateError(f"the template {text!r} uses {{{field}}}, which is not one of: {known}")
    if filter_name is not None and filter_name not in FILTERS:
        raise KeyTemplateError(f"unknown filter |{filter_name} in {text!r}; filters: {', '.join(FILTERS)}")
    return field


def _built_ins(path: str) -> dict[str, str]:
    folder, name = posixpath.split(path)
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:  # "README" or ".hidden": no extension
        stem, ext = name, ""
    return {"path": path, "dir": folder, "name": name, "stem": stem, "ext": ext}


def safe_key(key: str) -> str:
    """``key`` if it is a safe object key; raises ``UnsafeKey`` naming the problem otherwise.

    The messages do not repeat the key, so that failures group by reason in a report.
    """
    if not key:
        raise UnsafeKey("the mapped key is empty")
    if key.startswith("/") or key.endswith("/"):
        raise UnsafeKey("the mapped key starts or ends with '/'")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise UnsafeKey("the mapped key has an empty, '.' or '..' segment")
    if _CONTROL.search(key):
        raise UnsafeKey("the mapped key contains control characters")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise UnsafeKey(f"the mapped key is longer than {MAX_KEY_BYTES} bytes")
    return key
