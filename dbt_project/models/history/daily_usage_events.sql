{#- The evaluated events of each UTC day, kept day by day: the record of what was counted
    for a day, which outlives the exports (a vendor's export may drop old files; the nightly
    tables are rebuilt from what is delivered each night).

    One Dagster partition per day, like daily_usage_snapshots: a run replaces exactly the
    days from history_first_day() to the as-of day (the pre-hook), so re-running a day after
    a late event lands keeps each (source, id) once. -#}

{{ config(pre_hook="{{ delete_build_days(this, 'usage_date') }}") }}

{%- set first_day = history_first_day() %}
{%- set last_day = as_of_date() %}
{{ require_events_through('daily_usage_events', last_day) }}

select
    usage_date,
    period,
    tenant_id,
    source,
    id,
    type,
    time,
    user_id,
    feature,
    region,
    data,
    cast('{{ evaluated_through() }}' as date) as evaluated_through
from {{ ref('events_in_scope') }}
where usage_date between {{ date_literal(first_day) }} and {{ date_literal(last_day) }}
