"""The churn model's features: which columns of marts.fct_customer_features it may use, and how
to say each one to a marketer when it is a top reason behind a score. The one list everything uses.

A reason is stored twice (ml.churn_scores): as words with the customer's number in them
(``reason_1``: "76 days since the last purchase") and as the feature's name, a stable code to
group by (``reason_1_code``: ``days_since_last_purchase``).
"""

from __future__ import annotations

import math
import re

# column -> how to say its value, for the reasons behind a score. ``word[s]`` is said "word" when
# the number shown is 1 and "words" otherwise ("1 purchase", "2 purchases", "0 days").
FEATURES: dict[str, str] = {
    "days_since_last_purchase": "{value:.0f} day[s] since the last purchase",
    "overdue_ratio": "{value:.1f}x later than their usual rhythm between purchases",
    "avg_gap_days": "usually buys every {value:.0f} day[s]",
    "last_gap_days": "{value:.0f} day[s] between their last two purchases",
    "tenure_days": "customer for {value:.0f} day[s]",
    "purchases_lifetime": "{value:.0f} purchase[s] in total",
    "purchases_30d": "{value:.0f} purchase[s] in the last 30 days",
    "purchases_90d": "{value:.0f} purchase[s] in the last 90 days",
    "purchases_365d": "{value:.0f} purchase[s] in the last year",
    "spend_90d": "spent {value:,.0f} in the last 90 days",
    "spend_365d": "spent {value:,.0f} in the last year",
    "purchases_trend_90d": "{value:+.0f} purchase[s] in the last 90 days compared with the 90 before",
    "spend_trend_90d": "spend {value:+,.0f} in the last 90 days compared with the 90 before",
    "refund_share_365d": "refunded {value:.0%} of what they bought this year",
    "store_purchase_share_365d": "{value:.0%} of purchases in store",
    "online_purchase_share_365d": "{value:.0%} of purchases online",
    "app_purchase_share_365d": "{value:.0%} of purchases in the app",
    "miles_balance": "{value:,.0f} mile[s] to spend",
    "miles_expiring_30d": "{value:,.0f} mile[s] expiring within 30 days",
    "miles_redeemed_365d": "redeemed {value:,.0f} mile[s] this year",
    "email_engagement_score": "email engagement {value:.2f} (0 = ignores, 1 = opens and clicks)",
    "sms_engagement_score": "SMS engagement {value:.2f} (0 = ignores, 1 = opens and clicks)",
    "push_engagement_score": "push engagement {value:.2f} (0 = ignores, 1 = opens and clicks)",
    "email_sent_90d": "{value:.0f} email[s] received in 90 days",
    "app_visits_90d": "{value:.0f} app visit[s] in 90 days",
    "web_visits_90d": "{value:.0f} web visit[s] in 90 days",
    "calls_90d": "{value:.0f} call[s] to the call centre in 90 days",
    "complaints_365d": "{value:.0f} complaint[s] this year",
    "complaints_open": "{value:.0f} complaint[s] still open",
    "median_resolution_days_365d": "complaints took {value:.0f} day[s] to resolve (median)",
    "last_satisfaction_score": "rated their last complaint {value:.0f} out of 5",
    # The classic customer-base model's view (BG/NBD, ml/clv.py), fitted at training on the training
    # slice's purchase histories and stored with the model: candidate features, said as a marketer
    # would read them ("their purchase pattern": how often and how recently they bought).
    "bgnbd_p_alive": "{value:.0%} likely to still be a customer, going by their purchase pattern",
    "bgnbd_p_no_purchase": "{value:.0%} likely to buy nothing in the churn horizon, going by their purchase pattern",
    "bgnbd_expected_purchases": (
        "{value:.1f} purchase day[s] expected in the churn horizon, going by their purchase pattern"
    ),
}
# The features the customer-base model adds (ml/clv.py's bgnbd_features), not columns of the marts.
CUSTOMER_BASE_FEATURES = ["bgnbd_p_alive", "bgnbd_p_no_purchase", "bgnbd_expected_purchases"]

# The logistic-regression baseline: recency, frequency, monetary value.
RFM_FEATURES = ["days_since_last_purchase", "purchases_365d", "spend_365d"]

LABEL = "is_churned"
KEYS = ["customer_id", "as_of_date"]


_NUMBER = re.compile(r"\{value(?::([^}]*))?\}")
_PLURAL = re.compile(r"\[(\w+)\]")


def describe(feature: str, value: float | None) -> str:
    """One reason in words, e.g. '94 days since the last purchase', '1 purchase in total'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (
            "never bought" if feature == "days_since_last_purchase" else f"no {feature.replace('_', ' ')} yet"
        )
    template = FEATURES[feature]
    number = _NUMBER.search(template)
    shown = format(value, number.group(1) or "") if number else ""
    return _PLURAL.sub("" if _is_one(shown) else r"\1", template).format(value=value)


def _is_one(shown: str) -> bool:
    """Whether a number as the sentence shows it ('1', '+1', '-1', '1.0') reads as one."""
    try:
        return abs(float(shown.replace(",", ""))) == 1
    except ValueError:
        return False
