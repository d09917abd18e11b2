"""``--key-template``: legacy archive paths → object keys (pipeline.images.keymap)."""

from __future__ import annotations

import pytest

from pipeline.images.keymap import KeyTemplateError, UnsafeKey, parse_key_template, safe_key

LEGACY = "photos/{source}/{listing}_{n}.jpg -> photos/{source}/{listing}/{n}.jpg"


def mapped(spec: str | None, path: str) -> str | None:
    return parse_key_template(spec).map(path)


@pytest.mark.parametrize("spec", [None, "", "  ", "{path}"])
def test_default_keeps_the_relative_path(spec):
    assert mapped(spec, "photos/naples/A1_1.jpg") == "photos/naples/A1_1.jpg"
    assert parse_key_template(spec).spec == "{path}"


def test_legacy_layout_becomes_ours():
    assert mapped(LEGACY, "photos/naples/NAP0100_3.jpg") == "photos/naples/NAP0100/3.jpg"


def test_placeholders_are_greedy_within_a_segment():
    assert mapped(LEGACY, "photos/naples/A_B_12.jpg") == "photos/naples/A_B/12.jpg"


@pytest.mark.parametrize("path", ["photos/naples/A1.jpg", "photos/naples/x/A1_1.jpg", "photos/naples/A1_1.png",
                                  "other/naples/A1_1.jpg", "photos/naples/A1_1.jpgx"])
def test_paths_the_pattern_does_not_match_give_none(path):
    assert mapped(LEGACY, path) is None


def test_custom_regex_placeholders():
    spec = r"{listing:[A-Z]+\d+}-{n:\d{1,2}}.jpg -> {listing}/{n}.jpg"
    assert mapped(spec, "AB12-7.jpg") == "AB12/7.jpg"
    assert mapped(spec, "AB12-777.jpg") is None


def test_stars_match_within_and_across_segments():
    assert mapped("*/{name}.jpg -> flat/{name}.jpg", "2019/a.jpg") == "flat/a.jpg"
    assert mapped("*/{name}.jpg -> flat/{name}.jpg", "2019/05/a.jpg") is None
    spec = "**/{listing}_{n}.{ext} -> p/{listing}/{n}.{ext|lower}"
    assert mapped(spec, "a/b/c/L9_2.JPG") == "p/L9/2.jpg"
    assert mapped(spec, "L9_2.JPG") == "p/L9/2.jpg"  # **/ also matches nothing


def test_a_name_used_twice_must_capture_the_same_text():
    spec = "{source}/{source}_{n}.jpg -> {source}/{n}.jpg"
    assert mapped(spec, "naples/naples_1.jpg") == "naples/1.jpg"
    assert mapped(spec, "naples/miami_1.jpg") is None


def test_regular_expression_patterns():
    spec = r"re:(?P<listing>\w+)-(?P<n>\d+)\.jpe?g -> x/{listing}/{n}.jpg"
    assert mapped(spec, "L1-2.jpeg") == "x/L1/2.jpg"
    assert mapped(spec, "dir/L1-2.jpeg") is None  # matched against the whole path


def test_regex_metacharacters_in_simple_patterns_are_literal():
    assert mapped("a.b/(x)+{n}.jpg -> {n}", "a.b/(x)+1.jpg") == "1"
    assert mapped("a.b/(x)+{n}.jpg -> {n}", "aXb/(x)+1.jpg") is None


def test_built_in_fields_and_filters():
    spec = "legacy/{dir}/{stem|upper}.{ext|lower} "
    assert mapped(spec, "2019/May/img_1.JPG") == "legacy/2019/May/IMG_1.jpg"
    assert mapped("{name}", "a/b/c.tar.gz") == "c.tar.gz"
    assert mapped("{stem}|{ext}", "a/b/c.tar.gz") == "c.tar|gz"
    assert mapped("x/{stem}{ext}", "a/README") == "x/README"


def test_pattern_names_shadow_built_ins():
    assert mapped("{name}_{n}.jpg -> {name}/{n}.jpg", "A1_2.jpg") == "A1/2.jpg"


def test_doubled_braces_are_literal():
    assert mapped("{{{path}}}", "a.jpg") == "{a.jpg}"


@pytest.mark.parametrize("spec, message", [
    ("{nope}", "uses {nope}"),
    ("photos/{a}.jpg -> {b}", "uses {b}"),
    ("{path|title}", "unknown filter |title"),
    ("{a -> x", "malformed brace"),
    ("a} -> x", "malformed brace"),
    ("x -> {path", "malformed brace"),
    ("re:(unclosed -> x", "not a valid expression"),
    (" -> x", "is empty"),
    ("{path.__class__}", "malformed brace"),
    ("{0}", "malformed brace"),
])
def test_bad_specs_are_refused_with_a_reason(spec, message):
    with pytest.raises(KeyTemplateError, match=message.replace("|", r"\|").replace("{", r"\{").replace("}", r"\}")):
        parse_key_template(spec)


@pytest.mark.parametrize("spec, path", [
    ("{dir}/{name}", "top.jpg"),                   # empty dir → leading '/'
    ("x/{a}/y -> {a}/../../etc", "x/k/y"),
    ("{a} -> /abs/{a}", "k"),
    ("{a} -> {a}/", "k"),
    ("{a} -> a//{a}", "k"),
])
def test_unsafe_keys_are_refused(spec, path):
    with pytest.raises(UnsafeKey):
        mapped(spec, path)


@pytest.mark.parametrize("key", ["a/./b", "a\x00b", "a\nb", "x" * 1025, "a/../b"])
def test_safe_key_rules(key):
    with pytest.raises(UnsafeKey) as refused:
        safe_key(key)
    assert key not in str(refused.value)  # reasons group in the report: no key in them


def test_unicode_keys_are_fine():
    assert safe_key("photos/ñandú/çà.jpg") == "photos/ñandú/çà.jpg"
