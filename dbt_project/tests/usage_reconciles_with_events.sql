{#- No event lost or counted twice: tenant_activity_daily holds exactly the distinct
    (source, id) events of usage_events before the end of the as-of day. -#}
{{ config(meta={'dagster': {'ref': {'name': 'tenant_activity_daily'}}}) }}

with modelled as (
    select coalesce(sum(events), 0) as events
    from {{ ref('tenant_activity_daily') }}
),

delivered as (
    select count(*) as events
    from (
        select distinct source, id
        from {{ source('licensing', 'usage_events') }}
        where time < {{ as_of_cutoff() }}
    ) as distinct_events
)

select modelled.events as modelled_events, delivered.events as distinct_events
from modelled
cross join delivered
where modelled.events <> delivered.events
