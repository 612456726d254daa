"""Unit tests for db/paramstyle.py: SQLite's `?` and `:name` become PostgreSQL's `$n`, and nothing else changes."""

import pytest

from twitch_notifier.db.paramstyle import Numbered, bind, numbered


def test_positional_marks_are_numbered_in_order():
    assert numbered("SELECT * FROM t WHERE a = ? AND b IN (?, ?)") == Numbered(
        "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)", None, 3
    )


def test_a_name_used_twice_is_one_number():
    converted = numbered("UPDATE t SET x = CASE WHEN :avatar = '' THEN x ELSE :avatar END WHERE id = :id")
    assert converted.sql == "UPDATE t SET x = CASE WHEN $1 = '' THEN x ELSE $1 END WHERE id = $2"
    assert converted.names == ("avatar", "id")
    assert bind(converted, {"id": 7, "avatar": "a.png", "unused": 1}) == ["a.png", 7]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT '?', 'it''s :not a ?', \"odd:col?\" FROM t",
        "SELECT x::bigint, CAST(y AS text)::json FROM t",
        "SELECT 1 -- a ? and :name in a comment\n",
        "SELECT /* ? :name */ 1",
        "SELECT $body$ ? :name $body$, $$ ? $$",
        "SELECT a[1:2] FROM t",
        "SELECT json_extract(v, '$[0]'), '12:00:00+00:00' FROM t",
    ],
)
def test_quotes_comments_casts_and_slices_are_left_alone(sql):
    assert numbered(sql) == Numbered(sql, None, 0)


def test_marks_around_quoted_text_are_still_found():
    converted = numbered("SELECT ':x' || :y, '?' FROM t WHERE z::text = :z AND w = ':z'")
    assert converted.sql == "SELECT ':x' || $1, '?' FROM t WHERE z::text = $2 AND w = ':z'"
    assert converted.names == ("y", "z")
    assert numbered("SELECT '?', ? WHERE a = '--'").sql == "SELECT '?', $1 WHERE a = '--'"


def test_mixing_both_styles_is_refused():
    with pytest.raises(ValueError, match="mixes"):
        numbered("SELECT :a, ?")


def test_binding_checks_the_parameters_against_the_statement():
    positional = numbered("SELECT ?, ?")
    assert bind(positional, (1, None)) == [1, None]
    with pytest.raises(ValueError, match="takes 2"):
        bind(positional, (1,))
    with pytest.raises(TypeError):
        bind(positional, {"a": 1})
    named = numbered("SELECT :a, :b")
    with pytest.raises(KeyError, match="'b'"):
        bind(named, {"a": 1})
    with pytest.raises(TypeError):
        bind(named, (1, 2))
    assert bind(numbered("SELECT 1"), {}) == []
    assert bind(numbered("SELECT 1"), ()) == []


def test_each_statement_is_converted_once():
    sql = "SELECT :only_here_once FROM t"
    assert numbered(sql) is numbered(sql)
