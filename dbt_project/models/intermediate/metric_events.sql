{#- Each event once per catalog metric it feeds (metrics whose event_type is the event's
    type), with data.<value_property> as text and as a number. -#}

select
    events.source,
    events.id,
    events.tenant_id,
    events.time,
    events.usage_date,
    events.period,
    metrics.name as metric,
    metrics.aggregation,
    {{ json_text('events.data', 'metrics.value_property') }} as value_text,
    {{ to_number(json_text('events.data', 'metrics.value_property')) }} as value_number
from {{ ref('events_in_scope') }} as events
inner join {{ source('licensing', 'catalog') }} as metrics
    on metrics.kind = 'metric'
    and metrics.event_type = events.type
