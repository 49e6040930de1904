"""The YAML reader: positions per field path, duplicate keys, merge keys, safety limits."""

from __future__ import annotations

from astromesh.config.yaml_source import ParseFailure, Position, YamlDocument, parse_documents


def parse_one(text: str) -> YamlDocument:
    docs = parse_documents(text, {})
    assert not isinstance(docs, ParseFailure)
    (doc,) = docs
    return doc


def test_positions_of_keys_and_values() -> None:
    doc = parse_one("a:\n  b: 1\n  c:\n    - x\n    - {d: 2}\n")
    assert doc.data == {"a": {"b": 1, "c": ["x", {"d": 2}]}}
    assert doc.key_positions[("a", "b")] == Position(2, 3)
    assert doc.value_positions[("a", "b")] == Position(2, 6)
    assert doc.value_positions[("a", "c", 1, "d")] == Position(5, 11)
    # scalars point at the value, containers at their key, missing paths at the parent
    assert doc.position_of(("a", "b")) == Position(2, 6)
    assert doc.position_of(("a", "c")) == Position(3, 3)
    assert doc.position_of(("a", "c", 1, "nope")) == Position(5, 7)
    assert doc.position_of(("zzz",)) == Position(1, 1)


def test_scalars_keep_yaml_types_but_not_timestamps() -> None:
    doc = parse_one("i: 3\nf: 0.5\nb: true\nn: null\nd: 2024-01-01\ns: '3'\n")
    assert doc.data == {"i": 3, "f": 0.5, "b": True, "n": None, "d": "2024-01-01", "s": "3"}


def test_keys_are_their_text() -> None:
    assert parse_one("1: a\non: b\n").data == {"1": "a", "on": "b"}


def test_duplicate_keys_are_problems() -> None:
    doc = parse_one("a: 1\nb: 2\na: 3\n")
    assert doc.data == {"a": 3, "b": 2}
    (problem,) = doc.problems
    assert problem.path == ("a",)
    assert problem.position == Position(3, 1)
    assert "first defined at line 1" in problem.message


def test_merge_keys() -> None:
    doc = parse_one("base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n")
    assert doc.data["thing"] == {"x": 1, "y": 3}
    assert doc.problems == []
    assert doc.key_positions[("thing", "y")] == Position(4, 3)


def test_several_documents_and_empty_ones() -> None:
    docs = parse_documents("---\na: 1\n---\n---\nb: 2\n", {})
    assert not isinstance(docs, ParseFailure)
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}]
    assert [d.start.line for d in docs] == [2, 5]


def test_syntax_error_position() -> None:
    failure = parse_documents("a: [1, 2\nb: 3\n", {})
    assert isinstance(failure, ParseFailure)
    assert failure.position is not None and failure.position.line == 2
    assert failure.message.startswith("invalid YAML:")


def test_recursive_alias_is_a_problem_not_a_hang() -> None:
    doc = parse_one("a: &a [*a]\n")
    assert any("recursive alias" in p.message for p in doc.problems)


def test_alias_bomb_is_cut_short() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    doc = parse_one("\n".join(lines) + "\n")
    assert any("too large" in p.message for p in doc.problems)


def test_unknown_tags_are_problems() -> None:
    doc = parse_one("a: !Ref thing\n")
    assert doc.problems[0].message == "unsupported YAML tag '!Ref'"
