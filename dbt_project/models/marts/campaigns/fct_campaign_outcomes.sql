-- One row per rewards decision (a pre-grant to a treated customer or a holdout of a control
-- customer) taken on or before the run's as-of date, with what the customer did in the retention
-- window that starts at the decision: whether they bought (retained), what they spent, and for
-- treated customers the miles granted, redeemed and clawed back and what the redeemed miles cost.
-- Only purchases strictly before the as-of date count, so a young cohort's window is still open.
-- The slices of fct_campaign_results are attributes of the decision, the same for both arms: segment,
-- risk band, tenure band, and the channel and grant size the customer got (control: would have got).
-- The pre-period covariates (purchases and revenue in the 90 days before the decision) are what the
-- regression adjustment of macros/campaign_measures.sql nets out of the outcomes.
{%- set window_days = setting('retention_window_days') %}
{%- set pre_period_days = 90 %}
with

decisions as (
    select * from {{ ref('fct_pregrant_decisions') }}
),

churn_scores as (
    -- every score of every model version: a decision is banded by the very score it used
    select * from {{ ref('stg_ml__churn_score_versions') }}
),

transactions as (
    select * from {{ ref('stg_landing__transactions') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

grant_sizes as (
    -- For decisions recorded before the ledger kept decided_points (a control's would-have-been
    -- amount): the flat policy's amount depended on the full years with us alone (within one policy
    -- version, the knobs included), so a control customer would have got what the treated of the
    -- same cohort, policy version and tenure year got. A cell whose treated got different amounts is
    -- left out: its control's grant size is then unknown rather than guessed.
    select
        campaign_id,
        decision_date,
        policy_version,
        floor(tenure_days / 365) as tenure_years,
        min(granted_points) as grant_points
    from decisions
    where arm = 'treatment' and tenure_days is not null
    group by campaign_id, decision_date, policy_version, floor(tenure_days / 365)
    having min(granted_points) = max(granted_points)
),

windows as (
    select
        *,
        -- the window runs from the decision's midnight (UTC) for retention_window_days days
        cast(decision_date as timestamp) as window_starts_at,
        cast(decision_date as timestamp) + to_days({{ window_days }}) as window_ends_at
    from decisions
),

purchases_in_window as (
    select
        windows.decision_id,
        count(*) as purchase_count,
        -- summed exactly (DECIMAL), then cast: a sum of doubles depends on the order DuckDB's threads meet
        -- them, and a re-run would differ in the last digit
        cast(sum(transactions.amount) as double) as revenue
    from windows
    inner join transactions
        on windows.customer_id = transactions.customer_id
            and windows.window_starts_at <= transactions.occurred_at
            and windows.window_ends_at > transactions.occurred_at
            and transactions.occurred_at < cast({{ as_of_date() }} as timestamp)
    where transactions.transaction_kind = 'purchase'
    group by windows.decision_id
),

purchases_before as (
    -- the pre-period: the pre_period_days before the decision's midnight (known at the decision,
    -- so the same in both arms in expectation)
    select
        windows.decision_id,
        count(*) as purchase_count,
        -- summed exactly (DECIMAL), then cast: a sum of doubles depends on the order DuckDB's threads meet
        -- them, and a re-run would differ in the last digit
        cast(sum(transactions.amount) as double) as revenue
    from windows
    inner join transactions
        on windows.customer_id = transactions.customer_id
            and windows.window_starts_at - to_days({{ pre_period_days }}) <= transactions.occurred_at
            and windows.window_starts_at > transactions.occurred_at
    where transactions.transaction_kind = 'purchase'
    group by windows.decision_id
),

outcomes as (
    select
        ----------  ids
        windows.decision_id,
        windows.customer_id,
        windows.campaign_id,
        ----------  the cohort and the arm
        windows.decision_date,
        windows.arm,
        windows.grant_rule,
        -- how the customer was picked: by the policy's ranking, or at random to explore (decisions
        -- recorded before the ledger kept it were all ranked)
        coalesce(windows.selection, 'ranked') as selection,
        ----------  who, before the grant: risk band and segment on the decision date
        windows.churn_probability,
        -- the band the model stored with the decision's own score (thresholds: ml/params.yaml)
        coalesce(churn_scores.risk_band, 'unknown') as risk_band,
        -- recorded in the decision itself: the segment before the grant could move it
        coalesce(windows.segment, 'unknown') as segment,
        ----------  how and how much: what the treated got, what the control would have got
        -- the ledger records a grant's channel; a holdout sends nothing, so its customer's channel is
        -- the one the policy picks today (their best channel, email when unknown)
        coalesce(
            case when windows.arm = 'treatment' then windows.channel else customers.best_channel end,
            case when windows.arm = 'control' then 'email' end,
            'unknown'
        ) as channel,
        case
            when windows.tenure_days is null then 'unknown'
            else {{ tenure_band('windows.tenure_days') }}
        end as tenure_band,
        case
            when windows.arm = 'treatment' then windows.granted_points
            else coalesce(windows.decided_points, grant_sizes.grant_points)
        end as grant_size_points,
        case
            when windows.arm = 'treatment' then {{ grant_size_band('windows.granted_points') }}
            when coalesce(windows.decided_points, grant_sizes.grant_points) is null then 'unknown'
            else {{ grant_size_band('coalesce(windows.decided_points, grant_sizes.grant_points)') }}
        end as grant_size_band,
        ----------  before the decision: the pre-period covariates (regression adjustment)
        coalesce(purchases_before.purchase_count, 0) as pre_purchase_count,
        coalesce(purchases_before.revenue, 0.0) as pre_revenue,
        ----------  the retention window
        cast(windows.window_ends_at as date) as window_end_date,
        cast(windows.window_ends_at as date) <= {{ as_of_date() }} as is_window_complete,
        ----------  what the customer did in it (purchases before the as-of date)
        coalesce(purchases_in_window.purchase_count, 0) > 0 as is_retained,
        coalesce(purchases_in_window.purchase_count, 0) as purchase_count,
        coalesce(purchases_in_window.revenue, 0.0) as revenue,
        ----------  the miles (0 for control) and what the redeemed ones cost
        windows.granted_points,
        coalesce(windows.used_points, 0) as redeemed_points,
        coalesce(windows.clawed_back_points, 0) as clawed_back_points,
        cast(coalesce(windows.used_points, 0) * {{ setting('value_per_mile') }} as double) as redeemed_cost,
        {{ as_of_date() }} as as_of_date
    from windows
    left join purchases_in_window
        on windows.decision_id = purchases_in_window.decision_id
    left join purchases_before
        on windows.decision_id = purchases_before.decision_id
    left join churn_scores
        on windows.customer_id = churn_scores.customer_id
            and windows.decision_date = churn_scores.as_of_date
            and windows.model_version = churn_scores.model_version
    left join customers
        on windows.customer_id = customers.customer_id
    left join grant_sizes
        on windows.campaign_id = grant_sizes.campaign_id
            and windows.decision_date = grant_sizes.decision_date
            and windows.policy_version = grant_sizes.policy_version
            and floor(windows.tenure_days / 365) = grant_sizes.tenure_years
)

select * from outcomes
