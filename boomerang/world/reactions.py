"""How a customer of the simulated world reacts to a pre-grant: the hidden reaction type.

A grant meets one of four reactions (:data:`PERSUADABILITY`): it keeps a *persuadable* customer
who would otherwise drift away, annoys a *sleeping dog*, and changes nothing for a *sure thing*
(who stays anyway) or a *lost cause* (who leaves anyway, or is gone already). The type is not a
coin tossed at sign-up: it is decided when the grant arrives, from the customer's state that day,
the grant's channel and fixed per-customer noise (:func:`reaction_types`), so it follows the
customer as they change, and the warehouse can partly see it through their behaviour:

1. **Churned** customers are lost causes: they are gone, a grant reaches nobody.
2. **Reach.** The grant is announced on its ``channel`` (email, SMS or push) by
   ``grant_messages`` messages while it is open (the announcement and reminders); the customer is
   reached when they open at least one: ``P(reached) = 1 - (1 - affinity x (1 - disengagement))
   ** grant_messages``, the world's own
   chance of opening a message on that channel (the warehouse sees it as the channel's
   ``*_engagement_score``: opens and clicks over sends). A channel the customer cannot receive
   (no marketing consent; SMS without a phone; push without the app) never reaches them. An
   unreached customer does not react: a sure thing or a lost cause (rule 5).
3. **Sleeping dogs.** A reached customer with an open complaint, or whose last complaint was
   resolved badly in the last 90 days (slowly or rated 1-2), is annoyed with probability
   ``sleeping_dog_complaint`` (else ``sleeping_dog_base``). Visible: ``complaints_open``,
   ``last_satisfaction_score``, ``median_resolution_days_365d``.
4. **Persuadables.** Otherwise a reached customer is persuadable with probability
   ``persuadable_max x g(redeem_propensity) x m(disengagement) x h(days since last purchase)``:

   - ``g(r) = r / (r + redeem_half)``: how much miles mean to them. ``r`` is their hidden
     redeem propensity (lognormal, mean 1), which also multiplies how often their purchases
     redeem earned miles: visible as ``miles_redeemed_365d`` (for customers with enough miles).
   - ``m(o) = lapse_floor + (1 - lapse_floor) x exp(-((ln o - ln lapse_peak) / lapse_width) ** 2)``
     with ``o`` the purchases they are overdue (days since their last purchase x their purchase
     rate, :func:`overdue`): customers lapsing for a while (``o`` near ``lapse_peak``, 1.5 usual
     gaps) are the most movable, those who just bought (they stay anyway) and the long gone less.
     Visible: ``days_since_last_purchase``, ``avg_gap_days``, ``overdue_ratio``.
   - ``h = 1`` up to ``gone_after_days`` days since their last purchase (or since the world's
     start or their sign-up when they have not bought in it), ``gone_factor`` after: long-gone
     customers are hardly moved. Visible: ``days_since_last_purchase``.
5. **The rest** are lost causes when far gone (``d >= lost_disengagement`` or more than
   ``gone_after_days`` days since the last purchase) and sure things otherwise.

The noise: one uniform per customer (``reaction_noise``) decides 3-4 (sleeping dog below
``P(sleeping dog)``, persuadable below that plus ``P(persuadable)``), and one per customer and
channel (``reach_noise``) decides reach; both are fixed for life, so a customer's type moves only
with their state, and the oracle can ask for it on any day. These and ``redeem_propensity`` are
hashed from (world seed, customer number) (:func:`hidden_traits`): they take no draws from the
world's random streams, and a world saved before they existed gets the same ones on opening.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# What a reaction type code (int8) means: how a customer reacts to a grant.
PERSUADABILITY = (
    "sure_thing",  # 0: stays anyway
    "persuadable",  # 1: stays because of a grant
    "lost_cause",  # 2: leaves regardless (or is gone already)
    "sleeping_dog",  # 3: contact annoys them: slightly more likely to leave
)
SURE_THING, PERSUADABLE, LOST_CAUSE, SLEEPING_DOG = range(4)
CHANNELS = ("email", "sms", "push")  # the grant channels, in the column order of ``reach_noise``


@dataclass(frozen=True)
class ReactionRules:
    """The knobs of :func:`reaction_types` (see the module docstring for the rules)."""

    grant_messages: int = 6  # messages about a grant while it is open (the announcement, reminders)
    sleeping_dog_base: float = 0.03
    sleeping_dog_complaint: float = 0.5  # open complaint or a bad resolution in the last 90 days
    persuadable_max: float = 1.0
    redeem_half: float = 0.2  # g(r) = r / (r + redeem_half)
    redeem_sigma: float = 0.7  # redeem propensity: lognormal with mean 1 and this log-sd
    lapse_floor: float = 0.2  # m(o) far from the peak: the engaged and the long gone
    lapse_peak: float = 1.5  # purchases overdue at which a customer is the most movable
    lapse_width: float = 1.0  # the bump's width, in natural-log units of o
    gone_after_days: int = 120  # days without a purchase after which a customer counts as gone
    gone_factor: float = 0.1
    lost_disengagement: float = 0.65


def hidden_traits(seed: int, numbers: np.ndarray, rules: ReactionRules = ReactionRules()) -> dict:
    """The fixed per-customer reaction traits of customers ``numbers`` of the world ``seed``:
    ``redeem_propensity`` (lognormal, mean 1), ``reaction_noise`` (uniform) and ``reach_noise``
    (a uniform per channel of :data:`CHANNELS`), hashed from (seed, number)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    u1, u2 = _uniform(seed, numbers, 1), _uniform(seed, numbers, 2)
    normal = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller; 1 - u1 > 0
    sigma = rules.redeem_sigma
    return {
        "redeem_propensity": np.exp(sigma * normal - sigma**2 / 2).astype(np.float32),
        "reaction_noise": _uniform(seed, numbers, 3),
        "reach_noise": np.stack([_uniform(seed, numbers, 4 + k) for k in range(len(CHANNELS))], axis=1),
    }


def reach_probability(
    state: dict[str, np.ndarray], channel_codes: np.ndarray, rules: ReactionRules = ReactionRules()
) -> np.ndarray:
    """Each customer's chance that a grant announced on their channel (code into :data:`CHANNELS`)
    reaches them: opens at least one of its messages; 0 where the channel cannot reach them."""
    affinity = np.stack([state[f"affinity_{name}"] for name in CHANNELS], axis=1).astype(np.float64)
    rows = np.arange(channel_codes.size)
    p_open = affinity[rows, channel_codes] * (1.0 - state["disengagement"].astype(np.float64))
    reachable = np.stack(
        [state["consent"], state["consent"] & state["has_phone"], state["consent"] & state["has_app"]], axis=1
    )
    return np.where(reachable[rows, channel_codes], 1.0 - (1.0 - p_open) ** rules.grant_messages, 0.0)


def channel_codes(channels: str | np.ndarray | list | None, size: int) -> np.ndarray:
    """Channel names (one for all, or one per customer; None or unknown names: email) as codes."""
    if channels is None or isinstance(channels, str):
        channels = np.full(size, channels or "email", dtype=object)
    names = np.asarray(channels, dtype=object)
    if names.shape != (size,):
        raise ValueError(f"Expected one channel per customer ({size}), got an array of shape {names.shape}")
    codes = np.zeros(size, np.int64)  # email, also for None
    for code, name in enumerate(CHANNELS):
        codes[names == name] = code
    return codes


def purchase_rate(disengagement: np.ndarray, rhythm: np.ndarray, purchase_days_mean: float) -> np.ndarray:
    """Each customer's chance of buying on a day: less as they disengage, by their own rhythm."""
    return (1 - 0.8 * disengagement) / (purchase_days_mean * rhythm)


def overdue(state: dict[str, np.ndarray], day: int, purchase_days_mean: float) -> np.ndarray:
    """How many purchases each customer is overdue on ``day``: days since their last purchase x
    their purchase rate (about 1 after their usual gap between purchases)."""
    rate = purchase_rate(
        state["disengagement"].astype(np.float64), state["rhythm"].astype(np.float64), purchase_days_mean
    )
    return days_since_purchase(state, day) * rate


def probabilities(
    state: dict[str, np.ndarray],
    day: int,
    rules: ReactionRules = ReactionRules(),
    purchase_days_mean: float = 24.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P(sleeping dog | reached), P(persuadable | reached), far gone) per customer on ``day``."""
    d = state["disengagement"].astype(np.float64)
    annoyed_by_complaint = state["complaint_open"] | (state["bad_resolution_until"] > day)
    p_dog = np.where(annoyed_by_complaint, rules.sleeping_dog_complaint, rules.sleeping_dog_base)
    r = state["redeem_propensity"].astype(np.float64)
    g = r / (r + rules.redeem_half)
    log_overdue = np.log(np.maximum(overdue(state, day, purchase_days_mean), 1e-3))
    bump = np.exp(-(((log_overdue - np.log(rules.lapse_peak)) / rules.lapse_width) ** 2))
    m = rules.lapse_floor + (1.0 - rules.lapse_floor) * bump
    since = days_since_purchase(state, day)
    long_gone = since > rules.gone_after_days
    h = np.where(long_gone, rules.gone_factor, 1.0)
    p_persuadable = (1.0 - p_dog) * np.clip(rules.persuadable_max * g * m * h, 0.0, 1.0)
    far_gone = long_gone | (d >= rules.lost_disengagement)
    return p_dog, p_persuadable, far_gone


def days_since_purchase(state: dict[str, np.ndarray], day: int) -> np.ndarray:
    """Days from the last purchase (or the world's start, or sign-up, when none since) to ``day``."""
    since = np.maximum(np.maximum(state["last_purchase_day"], state["signup_day"]), 0)
    return np.maximum(day - since, 0)


def reached(
    state: dict[str, np.ndarray],
    channels: str | np.ndarray | list | None = None,
    rules: ReactionRules = ReactionRules(),
) -> np.ndarray:
    """Whether a grant announced on ``channels`` (one name for all or one per customer; default
    email) reaches each customer, with their state as it is: their fixed reach noise under
    :func:`reach_probability`."""
    size = state["number"].shape[0]
    codes = channel_codes(channels, size)
    return state["reach_noise"][np.arange(size), codes] < reach_probability(state, codes, rules)


def reaction_types(
    state: dict[str, np.ndarray],
    day: int,
    channels: str | np.ndarray | list | None = None,
    rules: ReactionRules = ReactionRules(),
    purchase_days_mean: float = 24.0,
) -> np.ndarray:
    """Each customer's reaction type (codes of :data:`PERSUADABILITY`, int8) to a grant that
    arrives on ``day`` through ``channels`` (one name for all or one per customer; default email),
    given ``state`` as it is when the grant arrives (``purchase_days_mean``: the world's
    :class:`Behaviour` value). Deterministic: the noise is fixed per customer."""
    p_dog, p_persuadable, far_gone = probabilities(state, day, rules, purchase_days_mean)
    reach = reached(state, channels, rules)
    u = state["reaction_noise"]
    types = np.where(far_gone, LOST_CAUSE, SURE_THING)
    types = np.where(reach & (u < p_dog + p_persuadable), PERSUADABLE, types)
    types = np.where(reach & (u < p_dog), SLEEPING_DOG, types)
    types = np.where(state["churn_day"] >= 0, LOST_CAUSE, types)
    return types.astype(np.int8)


def _uniform(seed: int, numbers: np.ndarray, salt: int) -> np.ndarray:
    """A uniform in [0, 1) per number: the splitmix64 finaliser over (seed, salt, number)."""
    mask = (1 << 64) - 1
    key = np.uint64((int(seed) * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9) & mask)
    with np.errstate(over="ignore"):
        x = numbers.astype(np.uint64) * np.uint64(0x94D049BB133111EB) + key
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
