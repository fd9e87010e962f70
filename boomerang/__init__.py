"""Boomerang: predictive pre-granted rewards, as a batch data pipeline."""
