{#- The days a run of the history models (daily_usage_events, daily_usage_snapshots) writes:
    from LICENSING_HISTORY_FROM (the first day of the Dagster partition range; by default the
    as-of day itself) to the as-of day.
    Read only when dbt executes, like the as-of day, so a new window never costs a re-parse. -#}

{% macro history_first_day() %}
    {%- set last = as_of_date() -%}
    {%- set raw = env_var('LICENSING_HISTORY_FROM', '') if execute else '' -%}
    {%- set text = (raw or '') | string | trim -%}
    {%- if text == '' -%}
        {{ return(last) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', text) -%}
        {{ exceptions.raise_compiler_error("LICENSING_HISTORY_FROM must be a day like 2026-11-01, got '" ~ text ~ "'") }}
    {%- endif -%}
    {%- set first = modules.datetime.date.fromisoformat(text) -%}
    {%- if first > last -%}
        {{ exceptions.raise_compiler_error("the history window starts (" ~ first ~ ") after the as-of day (" ~ last ~ ")") }}
    {%- endif -%}
    {{ return(first) }}
{% endmacro %}

{% macro date_literal(day) -%}
    cast('{{ day.isoformat() }}' as date)
{%- endmacro %}

{#- One row per day from first to last (dates), in a column named snapshot_day. -#}
{% macro day_series(first, last) -%}
    {{ return(adapter.dispatch('day_series', 'licensing_warehouse')(first, last)) }}
{%- endmacro %}

{% macro duckdb__day_series(first, last) -%}
    select cast(day as date) as snapshot_day
    from generate_series({{ date_literal(first) }}, {{ date_literal(last) }}, interval 1 day)
        as days(day)
{%- endmacro %}

{% macro postgres__day_series(first, last) -%}
    select cast(day as date) as snapshot_day
    from generate_series({{ date_literal(first) }}, {{ date_literal(last) }}, interval '1 day')
        as days(day)
{%- endmacro %}

{% macro default__day_series(first, last) -%}
    {{ exceptions.raise_compiler_error("day_series has no implementation for " ~ adapter.type()) }}
{%- endmacro %}

{#- The as-of day of the last nightly build of events_in_scope: the state the nightly run
    keeps (usage_build_state), or, without one, the newest day its rows were evaluated as of. -#}
{% macro evaluated_through() %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set state = adapter.get_relation(database=this.database, schema=this.schema, identifier='usage_build_state') -%}
    {%- set sql = "select max(evaluated_through) from " ~ (state if state is not none else ref('events_in_scope')) -%}
    {%- set through = run_query(sql).columns[0].values()[0] -%}
    {{ return(none if through is none else (through | string)[:10]) }}
{% endmacro %}

{#- A history model may not write a day after the day the nightly run's events_in_scope was
    evaluated through: the day would be silently short of events. -#}
{% macro require_events_through(model, last_day) %}
    {%- if execute %}
        {%- set through = evaluated_through() %}
        {%- if through is not none and last_day > modules.datetime.date.fromisoformat(through | string) %}
            {{ exceptions.raise_compiler_error(
                model ~ " up to " ~ last_day ~ ": the warehouse holds events evaluated through "
                ~ through ~ " only; run nightly_compliance as of " ~ last_day ~ " first"
            ) }}
        {%- endif %}
    {%- endif %}
{% endmacro %}
