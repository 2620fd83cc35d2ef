{#- Month-to-date usage per tenant and metric at the end of each day, next to the quota the
    tenant's entitlement sets for that month: the day-by-day history a statement or a trend
    chart needs, which usage_monthly (one row per month, as of one day) cannot give.

    One Dagster partition per day. A run writes the days from history_first_day() to the
    as-of day and replaces exactly those (the pre-hook), so re-running or backfilling any
    range leaves one row per (day, tenant, metric). Each day is computed from the events,
    not by adding days: distinct counts, maxima and latest values do not add. -#}

-- depends_on: {{ ref('events_in_scope') }}

{{ config(pre_hook="{{ delete_build_days(this, 'snapshot_day') }}") }}

{%- set first_day = history_first_day() %}
{%- set last_day = as_of_date() %}
{{ require_events_through('daily_usage_snapshots', last_day) }}

with events as (
    select *
    from {{ ref('metric_events') }}
    where usage_date >= {{ date_literal(first_day.replace(day=1)) }}
),

days as (
    {{ day_series(first_day, last_day) }}
),

daily as (
    select
        tenant_id,
        metric,
        period,
        usage_date,
        max(aggregation) as aggregation,
        count(*) as events,
        sum(value_number) as value_sum,
        max(value_number) as value_max
    from events
    group by tenant_id, metric, period, usage_date
),

-- LATEST: each day's last value (by time, ties to the larger (source, id), as usage_monthly).
latest_daily as (
    select tenant_id, metric, period, usage_date, value_number
    from (
        select
            tenant_id,
            metric,
            period,
            usage_date,
            value_number,
            row_number() over (
                partition by tenant_id, metric, usage_date
                order by time desc, coalesce(source, '') desc, id desc
            ) as recency
        from events
        where aggregation = 'LATEST' and value_number is not null
    ) as ranked
    where recency = 1
),

-- UNIQUE_COUNT: the day each value is first seen in its month.
first_seen as (
    select tenant_id, metric, period, value_text, min(usage_date) as first_day
    from events
    where aggregation = 'UNIQUE_COUNT' and value_text is not null
    group by tenant_id, metric, period, value_text
),

to_date as (
    select
        days.snapshot_day,
        daily.tenant_id,
        daily.metric,
        daily.period,
        max(daily.aggregation) as aggregation,
        sum(daily.events) as events,
        sum(daily.value_sum) as value_sum,
        max(daily.value_max) as value_max
    from days
    inner join daily
        on daily.period = {{ month_period('days.snapshot_day') }}
        and daily.usage_date <= days.snapshot_day
    group by days.snapshot_day, daily.tenant_id, daily.metric, daily.period
),

latest_to_date as (
    select snapshot_day, tenant_id, metric, value_number
    from (
        select
            days.snapshot_day,
            latest_daily.tenant_id,
            latest_daily.metric,
            latest_daily.value_number,
            row_number() over (
                partition by days.snapshot_day, latest_daily.tenant_id, latest_daily.metric
                order by latest_daily.usage_date desc
            ) as recency
        from days
        inner join latest_daily
            on latest_daily.period = {{ month_period('days.snapshot_day') }}
            and latest_daily.usage_date <= days.snapshot_day
    ) as ranked
    where recency = 1
),

unique_to_date as (
    select days.snapshot_day, first_seen.tenant_id, first_seen.metric, count(*) as seen
    from days
    inner join first_seen
        on first_seen.period = {{ month_period('days.snapshot_day') }}
        and first_seen.first_day <= days.snapshot_day
    group by days.snapshot_day, first_seen.tenant_id, first_seen.metric
),

quantities as (
    select
        to_date.snapshot_day,
        to_date.period,
        to_date.tenant_id,
        to_date.metric,
        to_date.aggregation,
        {{ metric_quantity(
            'to_date.aggregation', 'to_date.events', 'to_date.value_sum', 'to_date.value_max',
            'latest_to_date.value_number', 'coalesce(unique_to_date.seen, 0)'
        ) }} as quantity,
        cast(to_date.events as bigint) as events
    from to_date
    left join latest_to_date
        on latest_to_date.snapshot_day = to_date.snapshot_day
        and latest_to_date.tenant_id = to_date.tenant_id
        and latest_to_date.metric = to_date.metric
    left join unique_to_date
        on unique_to_date.snapshot_day = to_date.snapshot_day
        and unique_to_date.tenant_id = to_date.tenant_id
        and unique_to_date.metric = to_date.metric
)

select
    quantities.snapshot_day,
    quantities.period,
    quantities.tenant_id,
    quantities.metric,
    quantities.aggregation,
    quantities.quantity,
    quantities.events,
    -- The month's quota; null: no quota on the metric (unlimited) or no entitlement row.
    {{ to_number(json_text('entitlements.quotas', 'quantities.metric')) }} as allowed,
    coalesce(entitlements.entitled, false) as entitled
from quantities
left join {{ source('licensing', 'effective_entitlements') }} as entitlements
    on entitlements.tenant_id = quantities.tenant_id
    and entitlements.period = quantities.period
