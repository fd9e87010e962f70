-- One row per rewards decision taken on or before the run's as-of date: the customer's marketing
-- segment on the decision date, before any grant could move it. The rules of
-- int_customer_segments (and seeds/segment_definitions.csv), applied to purchases strictly before
-- each decision date, with value quintiles among every customer signed up by then. Only the
-- decision dates are computed, and only the purchase features the rules need.
with

decisions as (
    select * from {{ ref('fct_pregrant_decisions') }}
),

customers as (
    select * from {{ ref('stg_landing__customers') }}
),

transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

decision_dates as (
    select distinct decision_date from decisions
),

purchase_gaps as (
    select
        customer_id,
        occurred_at,
        date_diff(
            'day',
            lag(occurred_at) over (partition by customer_id order by occurred_at, transaction_id),
            occurred_at
        ) as gap_days
    from transactions
    where transaction_kind = 'purchase'
),

population as (
    select
        customers.customer_id,
        decision_dates.decision_date,
        date_diff('day', customers.signup_date, decision_dates.decision_date) as tenure_days
    from customers
    inner join decision_dates
        on customers.signup_date < decision_dates.decision_date
),

purchase_history as (
    select
        purchase_gaps.customer_id,
        decision_dates.decision_date,
        max(purchase_gaps.occurred_at) as last_purchase_at,
        avg(purchase_gaps.gap_days) as avg_gap_days,
        count(*) filter (
            where purchase_gaps.occurred_at >= decision_dates.decision_date - to_days(365)
        ) as purchases_365d
    from purchase_gaps
    inner join decision_dates
        on purchase_gaps.occurred_at < decision_dates.decision_date
    group by purchase_gaps.customer_id, decision_dates.decision_date
),

spend as (
    select
        transactions.customer_id,
        decision_dates.decision_date,
        sum(transactions.amount) as spend_365d
    from transactions
    inner join decision_dates
        on transactions.occurred_at < decision_dates.decision_date
            and transactions.occurred_at >= decision_dates.decision_date - to_days(365)
    where transactions.transaction_kind = 'purchase'
    group by transactions.customer_id, decision_dates.decision_date
),

features as (
    select
        population.customer_id,
        population.decision_date,
        population.tenure_days,
        date_diff('day', cast(purchase_history.last_purchase_at as date), population.decision_date)
            as days_since_last_purchase,
        coalesce(purchase_history.purchases_365d, 0) as purchases_365d,
        coalesce(spend.spend_365d, 0) as spend_365d,
        date_diff('day', cast(purchase_history.last_purchase_at as date), population.decision_date)
        / nullif(purchase_history.avg_gap_days, 0) as overdue_ratio
    from population
    left join purchase_history
        on population.customer_id = purchase_history.customer_id
            and population.decision_date = purchase_history.decision_date
    left join spend
        on population.customer_id = spend.customer_id
            and population.decision_date = spend.decision_date
),

tiered as (
    select
        *,
        ntile(5) over (
            partition by decision_date order by spend_365d desc, customer_id asc
        ) as value_quintile
    from features
),

segmented as (
    select
        customer_id,
        decision_date,
        -- keep in step with int_customer_segments
        case
            when tenure_days < 90 then 'new'
            when days_since_last_purchase is null or days_since_last_purchase > 180 then 'lapsed'
            when purchases_365d >= 2 and overdue_ratio > 2 then 'at_risk'
            when value_quintile = 1 and spend_365d > 0 and days_since_last_purchase <= 30 then 'champions'
            when purchases_365d >= 6 and tenure_days >= 365 then 'loyal'
            else 'occasional'
        end as segment
    from tiered
),

final as (
    select
        decisions.decision_id,
        decisions.customer_id,
        decisions.decision_date,
        coalesce(segmented.segment, 'unknown') as segment_at_decision
    from decisions
    left join segmented
        on decisions.customer_id = segmented.customer_id
            and decisions.decision_date = segmented.decision_date
)

select * from final
