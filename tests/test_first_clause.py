"""Where a reply is cut for speech: first clause early, then whole sentences."""

from __future__ import annotations

from processors.first_clause import FirstClauseTextAggregator


async def chunks(agg: FirstClauseTextAggregator, tokens: list[str]) -> list[str]:
    out = []
    for token in tokens:
        async for a in agg.aggregate(token):
            out.append(a.text)
    tail = await agg.flush()
    return out + ([tail.text] if tail else [])


def tokens(text: str) -> list[str]:
    # LLMs stream word pieces with leading spaces.
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


async def test_first_clause_is_released_before_the_sentence_ends():
    reply = "Well, once upon a time, in the land of Eridus, there lived a dragon. It was old."
    got = await chunks(FirstClauseTextAggregator(), tokens(reply))
    assert got[0] == "Well, once upon a time,"
    assert got[1:] == ["in the land of Eridus, there lived a dragon.", "It was old."]


async def test_a_long_opening_without_punctuation_is_cut_at_max_words():
    reply = "The capital city of France has been Paris for a very long time indeed. Yes."
    got = await chunks(FirstClauseTextAggregator(max_words=6), tokens(reply))
    assert got[0] == "The capital city of France has"
    assert got[1] == "been Paris for a very long time indeed."


async def test_the_cut_never_lands_on_a_function_word():
    reply = "There was a time when a dragon lived in the mountains far away."
    got = await chunks(FirstClauseTextAggregator(max_words=6), tokens(reply))
    assert got[0] == "There was a time when a dragon"


async def test_a_short_first_sentence_is_spoken_whole():
    got = await chunks(FirstClauseTextAggregator(), tokens("Hi there! How are you, my friend?"))
    assert got == ["Hi there!", "How are you, my friend?"]


async def test_each_reply_starts_with_a_clause_again():
    agg = FirstClauseTextAggregator()
    await chunks(agg, tokens("Sure, I can do that for you."))
    second = await chunks(agg, tokens("Of course, my dear friend, whenever you like."))
    assert second[0] == "Of course,"
    await agg.handle_interruption()
    third = await chunks(agg, tokens("Right, so where were we?"))
    assert third == ["Right, so where were we?"]  # "Right," has too few words


async def test_a_one_word_clause_waits_for_more():
    got = await chunks(FirstClauseTextAggregator(), tokens("Well, the answer is simple: we go."))
    assert got[0] == "Well, the answer is simple:"  # not "Well," alone, nor after "is"


async def test_a_sentence_that_came_whole_is_not_cut_before_its_last_word():
    # A prefilled answer arrives in one delta: no waiting to save, and "Biscuit." alone
    # sounds (and is heard) wrong.
    got = await chunks(
        FirstClauseTextAggregator(), ["Your dog is called Biscuit. She", " is a sweet dog."]
    )
    assert got == ["Your dog is called Biscuit.", "She is a sweet dog."]
    # Streamed word by word, a longer one is still cut early: the rest is not in hand.
    reply = "Your dog is called Biscuit and she is lovely."
    assert (await chunks(FirstClauseTextAggregator(), tokens(reply)))[0] == "Your dog is called"
