{#- Per (tenant, metric, grain) usage from the daily parts (metric_daily), each metric by its
    own aggregation: COUNT and SUM add the days up, MAX takes the largest, LATEST the latest
    value by time, UNIQUE_COUNT counts the distinct values over the days (a month is not the
    sum of its days for UNIQUE_COUNT, MAX or LATEST). Only the build's days (months) are
    aggregated: the models are incremental over them (macros/build_days.sql). -#}

{% macro usage_aggregate(grain, grain_name) -%}
{%- set in_build = in_build_months('period') if grain == 'period' else in_build_days('usage_date') -%}
with days as (
    select * from {{ ref('metric_daily') }}
    where {{ in_build }}
),

totals as (
    select
        tenant_id,
        metric,
        {{ grain }} as grain,
        max(aggregation) as aggregation,
        sum(events) as events,
        sum(value_sum) as value_sum,
        max(value_max) as value_max
    from days
    group by tenant_id, metric, {{ grain }}
),

distinct_values as (
    select
        tenant_id,
        metric,
        {{ grain }} as grain,
        count(distinct value_text) as value_distinct
    from {{ ref('metric_daily_values') }}
    where {{ in_build }}
    group by tenant_id, metric, {{ grain }}
),

-- LATEST: the latest of the days' latest values, in the order metric_daily ranks a day's
ranked_latest as (
    select
        tenant_id,
        metric,
        {{ grain }} as grain,
        latest_value,
        row_number() over (
            partition by tenant_id, metric, {{ grain }}
            order by {{ latest_first('latest_value', 'latest_time', 'latest_source', 'latest_id') }}
        ) as recency
    from days
    where aggregation = 'LATEST'
)

select
    totals.tenant_id,
    totals.metric,
    totals.grain as {{ grain_name }},
    {{ metric_quantity(
        'totals.aggregation', 'totals.events', 'totals.value_sum', 'totals.value_max',
        'ranked_latest.latest_value', 'coalesce(distinct_values.value_distinct, 0)'
    ) }} as quantity,
    cast(totals.events as bigint) as events
from totals
left join ranked_latest
    on ranked_latest.tenant_id = totals.tenant_id
    and ranked_latest.metric = totals.metric
    and ranked_latest.grain = totals.grain
    and ranked_latest.recency = 1
left join distinct_values
    on distinct_values.tenant_id = totals.tenant_id
    and distinct_values.metric = totals.metric
    and distinct_values.grain = totals.grain
{%- endmacro %}


{#- A metric's quantity from its aggregates, by the catalog aggregation: events for COUNT,
    the sum, maximum or latest value (0 when no event carried one), or the distinct values.
    Shared by usage_aggregate and daily_usage_snapshots, so both count a metric alike. -#}
{% macro metric_quantity(aggregation, events, value_sum, value_max, latest, distinct) -%}
    cast(
        case {{ aggregation }}
            when 'COUNT' then {{ events }}
            when 'SUM' then coalesce({{ value_sum }}, 0)
            when 'MAX' then coalesce({{ value_max }}, 0)
            when 'LATEST' then coalesce({{ latest }}, 0)
            when 'UNIQUE_COUNT' then {{ distinct }}
        end as double precision
    )
{%- endmacro %}


{#- The order that puts a LATEST metric's latest value first: a value before none, then the
    later time, then the larger (source, id). metric_daily ranks a day's events by it and
    usage_aggregate the days' latest values, so a month's latest is its last day's latest. -#}
{% macro latest_first(value, time, source, id) -%}
    case when {{ value }} is null then 1 else 0 end,
    {{ time }} desc,
    coalesce({{ source }}, '') desc,
    {{ id }} desc
{%- endmacro %}
