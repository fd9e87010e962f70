"""Every reason template says its number in good English: "1 purchase", "2 purchases", never
"1 purchases"; the customer-base model's features have words too."""

from __future__ import annotations

import re

import pytest

from ml.features import CUSTOMER_BASE_FEATURES, FEATURES, describe

# a number the sentence shows as one, then the word after it
_ONE_THEN_WORD = re.compile(r"(?<![\d.,])[+-]?1(?:\.0+)? ([a-z]+)")


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_one_of_anything_is_singular_and_more_is_plural(feature):
    for value in (1, 1.0, -1, 0.96, 1.04):
        text = describe(feature, value)
        for word in _ONE_THEN_WORD.findall(text):
            assert not (word.endswith("s") and word[:-1] in _NOUNS), text
    if "[s]" in FEATURES[feature]:
        singular, plural = describe(feature, 1), describe(feature, 2)
        assert singular != plural and "[" not in singular + plural


# the counted nouns of the templates (a word ending in s after "1" that is one of these is a plural)
_NOUNS = {re.sub(r"\[s\]$", "", word) for text in FEATURES.values() for word in re.findall(r"\w+\[s\]", text)}


def test_the_counted_nouns_are_known():
    assert {"purchase", "day", "mile", "complaint", "call", "email", "visit"} <= _NOUNS


@pytest.mark.parametrize(
    ("feature", "value", "words"),
    [
        (
            "bgnbd_expected_purchases",
            1,
            "1.0 purchase day expected in the churn horizon, going by their purchase pattern",
        ),
        (
            "bgnbd_expected_purchases",
            2.26,
            "2.3 purchase days expected in the churn horizon, going by their purchase pattern",
        ),
        ("bgnbd_p_alive", 0.123, "12% likely to still be a customer, going by their purchase pattern"),
        (
            "bgnbd_p_no_purchase",
            0.7,
            "70% likely to buy nothing in the churn horizon, going by their purchase pattern",
        ),
        ("purchases_90d", 1, "1 purchase in the last 90 days"),
        ("purchases_trend_90d", 1, "+1 purchase in the last 90 days compared with the 90 before"),
    ],
)
def test_reasons_in_words(feature, value, words):
    assert describe(feature, value) == words


def test_the_customer_base_features_are_candidates_with_words():
    assert set(CUSTOMER_BASE_FEATURES) <= set(FEATURES)
