"""The churn model: point-in-time training set, training, evaluation, registry and scoring."""
