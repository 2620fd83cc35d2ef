{#- No event lost or counted twice: on the days this nightly build rewrote (every day when
    it built the models whole), tenant_activity_daily holds exactly the distinct (source, id)
    events of usage_events before the end of the as-of day. The days it kept were reconciled
    when they were written, and the load keeps (source, id) unique across files and nights,
    so no event spans a rewritten day and a kept one: the test costs what the night brought,
    not a distinct count of the whole history. -#}
{{ config(meta={'dagster': {'ref': {'name': 'tenant_activity_daily'}}}) }}
{%- set days = nightly_changed_days() if execute else none %}

with modelled as (
    select coalesce(sum(events), 0) as events
    from {{ ref('tenant_activity_daily') }}
    where {{ in_days('usage_date', days) }}
),

delivered as (
    select count(*) as events
    from (
        select distinct source, id
        from {{ source('licensing', 'usage_events') }}
        where time < {{ as_of_cutoff() }}
            and {{ in_days_time('time', days) }}
    ) as distinct_events
)

select modelled.events as modelled_events, delivered.events as distinct_events
from modelled
cross join delivered
where modelled.events <> delivered.events
