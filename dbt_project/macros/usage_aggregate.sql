{#- Per (tenant, metric, grain) usage from metric_events, each metric by its own aggregation.
    Daily and monthly both come straight from the events: a month is not the sum of its days
    for UNIQUE_COUNT, MAX or LATEST. -#}

{% macro usage_aggregate(grain, grain_name) -%}
with metric_events as (
    select * from {{ ref('metric_events') }}
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
    cast(
        case totals.aggregation
            when 'COUNT' then totals.events
            when 'SUM' then coalesce(totals.value_sum, 0)
            when 'MAX' then coalesce(totals.value_max, 0)
            when 'LATEST' then coalesce(ranked_latest.value_number, 0)
            when 'UNIQUE_COUNT' then totals.value_distinct
        end as double precision
    ) as quantity,
    cast(totals.events as bigint) as events
from totals
left join ranked_latest
    on ranked_latest.tenant_id = totals.tenant_id
    and ranked_latest.metric = totals.metric
    and ranked_latest.grain = totals.grain
    and ranked_latest.recency = 1
{%- endmacro %}
