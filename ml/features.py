"""The churn model's features: which columns of marts.fct_customer_features it may use, and how
to say each one to a marketer when it is a top reason behind a score. The one list everything uses."""

from __future__ import annotations

import math

# column -> how to say its value, for the reasons behind a score
FEATURES: dict[str, str] = {
    "days_since_last_purchase": "{value:.0f} days since the last purchase",
    "overdue_ratio": "{value:.1f}x later than their usual rhythm between purchases",
    "avg_gap_days": "usually buys every {value:.0f} days",
    "last_gap_days": "{value:.0f} days between their last two purchases",
    "tenure_days": "customer for {value:.0f} days",
    "purchases_lifetime": "{value:.0f} purchases in total",
    "purchases_30d": "{value:.0f} purchases in the last 30 days",
    "purchases_90d": "{value:.0f} purchases in the last 90 days",
    "purchases_365d": "{value:.0f} purchases in the last year",
    "spend_90d": "spent {value:,.0f} in the last 90 days",
    "spend_365d": "spent {value:,.0f} in the last year",
    "purchases_trend_90d": "{value:+.0f} purchases in the last 90 days compared with the 90 before",
    "spend_trend_90d": "spend {value:+,.0f} in the last 90 days compared with the 90 before",
    "refund_share_365d": "refunded {value:.0%} of what they bought this year",
    "store_purchase_share_365d": "{value:.0%} of purchases in store",
    "online_purchase_share_365d": "{value:.0%} of purchases online",
    "app_purchase_share_365d": "{value:.0%} of purchases in the app",
    "miles_balance": "{value:,.0f} miles to spend",
    "miles_expiring_30d": "{value:,.0f} miles expiring within 30 days",
    "miles_redeemed_365d": "redeemed {value:,.0f} miles this year",
    "email_engagement_score": "email engagement {value:.2f} (0 = ignores, 1 = opens and clicks)",
    "sms_engagement_score": "SMS engagement {value:.2f} (0 = ignores, 1 = opens and clicks)",
    "push_engagement_score": "push engagement {value:.2f} (0 = ignores, 1 = opens and clicks)",
    "email_sent_90d": "{value:.0f} emails received in 90 days",
    "app_visits_90d": "{value:.0f} app visits in 90 days",
    "web_visits_90d": "{value:.0f} web visits in 90 days",
    "calls_90d": "{value:.0f} calls to the call centre in 90 days",
    "complaints_365d": "{value:.0f} complaints this year",
    "complaints_open": "{value:.0f} complaint(s) still open",
    "median_resolution_days_365d": "complaints took {value:.0f} days to resolve (median)",
    "last_satisfaction_score": "rated their last complaint {value:.0f} out of 5",
}

# The logistic-regression baseline: recency, frequency, monetary value.
RFM_FEATURES = ["days_since_last_purchase", "purchases_365d", "spend_365d"]

LABEL = "is_churned"
KEYS = ["customer_id", "as_of_date"]


def describe(feature: str, value: float | None) -> str:
    """One reason in words, e.g. '94 days since the last purchase'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (
            "never bought" if feature == "days_since_last_purchase" else f"no {feature.replace('_', ' ')} yet"
        )
    return FEATURES[feature].format(value=value)
