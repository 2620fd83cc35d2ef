{#- The days a run of daily_usage_snapshots writes: from LICENSING_SNAPSHOT_START (the first
    day of the Dagster partition range; by default the as-of day itself) to the as-of day.
    Read only when dbt executes, like the as-of day, so a new window never costs a re-parse. -#}

{% macro snapshot_first_day() %}
    {%- set last = as_of_date() -%}
    {%- set raw = env_var('LICENSING_SNAPSHOT_START', '') if execute else '' -%}
    {%- set text = (raw or '') | string | trim -%}
    {%- if text == '' -%}
        {{ return(last) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', text) -%}
        {{ exceptions.raise_compiler_error("LICENSING_SNAPSHOT_START must be a day like 2026-11-01, got '" ~ text ~ "'") }}
    {%- endif -%}
    {%- set first = modules.datetime.date.fromisoformat(text) -%}
    {%- if first > last -%}
        {{ exceptions.raise_compiler_error("the snapshot window starts (" ~ first ~ ") after the as-of day (" ~ last ~ ")") }}
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
