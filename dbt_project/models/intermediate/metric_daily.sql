{{ config(
    materialized='incremental',
    pre_hook="{{ delete_build_days(this, 'usage_date') }}"
) }}

{#- Per (tenant, metric, day) the parts every aggregation is made of: events, the sum and the
    maximum of the values, and the day's latest value with what orders it (time, then the
    larger (source, id), so reruns agree). usage_daily and usage_monthly are built from these
    rows, a month from its days: rebuilding a month touched by one night costs its days'
    rows, not its events. UNIQUE_COUNT's distinct values are in metric_daily_values.
    Incremental over the build's days (macros/build_days.sql). -#}

with metric_events as (
    select * from {{ ref('metric_events') }}
    where {{ in_build_days('usage_date') }}
),

totals as (
    select
        tenant_id,
        metric,
        usage_date,
        period,
        max(aggregation) as aggregation,
        count(*) as events,
        sum(value_number) as value_sum,
        max(value_number) as value_max
    from metric_events
    group by tenant_id, metric, usage_date, period
),

ranked_latest as (
    select
        tenant_id,
        metric,
        usage_date,
        value_number,
        time,
        source,
        id,
        row_number() over (
            partition by tenant_id, metric, usage_date
            order by {{ latest_first('value_number', 'time', 'source', 'id') }}
        ) as recency
    from metric_events
    where aggregation = 'LATEST'
)

select
    totals.tenant_id,
    totals.metric,
    totals.usage_date,
    totals.period,
    totals.aggregation,
    cast(totals.events as bigint) as events,
    totals.value_sum,
    totals.value_max,
    ranked_latest.value_number as latest_value,
    ranked_latest.time as latest_time,
    ranked_latest.source as latest_source,
    ranked_latest.id as latest_id
from totals
left join ranked_latest
    on ranked_latest.tenant_id = totals.tenant_id
    and ranked_latest.metric = totals.metric
    and ranked_latest.usage_date = totals.usage_date
    and ranked_latest.recency = 1
