{#- The events this run evaluates: before the end of the as-of day, and each (source, id)
    once (a repeated delivery is the same event). Later events stay in usage_events. -#}

with in_window as (
    select
        source,
        id,
        type,
        tenant_id,
        time,
        user_id,
        feature,
        region,
        data,
        row_number() over (
            partition by source, id
            order by time, file, line
        ) as delivery
    from {{ source('licensing', 'usage_events') }}
    where time < {{ as_of_cutoff() }}
)

select
    source,
    id,
    type,
    tenant_id,
    time,
    cast(time as date) as usage_date,
    {{ month_period('time') }} as period,
    user_id,
    feature,
    region,
    data
from in_window
where delivery = 1
