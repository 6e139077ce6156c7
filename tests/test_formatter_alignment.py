"""The formatter matches source and output tokens to put comments back; a
dropped empty `with { }` must not pair its braces with the next block's
(hypothesis found this: the comment left the block, and a second run then
printed `account {}  #`, so formatting was not idempotent)."""

from __future__ import annotations

from policydsl.formatter import format_source

SOURCE = 'policy "" version "" include "" with { } account {#\n}'


def test_a_comment_stays_in_its_block_after_an_empty_with_is_dropped() -> None:
    once = format_source(SOURCE)
    assert once.endswith("account {  #\n}\n")
    assert format_source(once) == once


def test_a_respelt_string_before_a_dropped_with_does_not_pair_words_across_blocks() -> None:
    """The same, when the include's path is respelt (`"\\x"` prints as
    `"x"`): a replacement must pair every token it spans, not only the first
    (found by the slow formatter property: `with` paired with `account`)."""
    source = 'policy "" version "" include "\\x" with { } account {#\n}'
    once = format_source(source)
    assert once.endswith('include "x"\n\naccount {  #\n}\n')
    assert format_source(once) == once
