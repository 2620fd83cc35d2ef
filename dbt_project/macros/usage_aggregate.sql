{#- Per (tenant, metric, grain) usage from metric_events, each metric by its own aggregation.
    Daily and monthly both come straight from the events: a month is not the sum of its days
    for UNIQUE_COUNT, MAX or LATEST. Only the build's days (months) are aggregated: the
    models are incremental over them (macros/build_days.sql). -#}

{% macro usage_aggregate(grain, grain_name) -%}
with metric_events as (
    select * from {{ ref('metric_events') }}
    where {{ in_build_months(grain) if grain == 'period' else in_build_days(grain) }}
),

totals as (
    select
        tenant_id,
        metric,
        {{ grain }} as grain,
        max(aggregation) as aggregation,
        count(*) as events,
        sum(value_number) as value_sum,
        max(value_number) as value_max,
        count(distinct value_text) as value_distinct
    from metric_events
    group by tenant_id, metric, {{ grain }}
),

-- LATEST: the value of the last event by time that carries one; ties go to the larger
-- (source, id) so reruns agree.
ranked_latest as (
    select
        tenant_id,
        metric,
        {{ grain }} as grain,
        value_number,
        row_number() over (
            partition by tenant_id, metric, {{ grain }}
            order by
                case when value_number is null then 1 else 0 end,
                time desc,
                coalesce(source, '') desc,
                id desc
        ) as recency
    from metric_events
    where aggregation = 'LATEST'
)

select
    totals.tenant_id,
    totals.metric,
    totals.grain as {{ grain_name }},
    {{ metric_quantity(
        'totals.aggregation', 'totals.events', 'totals.value_sum', 'totals.value_max',
        'ranked_latest.value_number', 'totals.value_distinct'
    ) }} as quantity,
    cast(totals.events as bigint) as events
from totals
left join ranked_latest
    on ranked_latest.tenant_id = totals.tenant_id
    and ranked_latest.metric = totals.metric
    and ranked_latest.grain = totals.grain
    and ranked_latest.recency = 1
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
