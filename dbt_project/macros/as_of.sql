{#- The run's as-of day. Events strictly before the start of the next day (UTC) are evaluated;
    later ones stay in usage_events but are outside this run. Computed here, not with the
    database's current_date, so every model, test and dialect sees the same day.

    Dagster hands the day over in the environment variable LICENSING_AS_OF, read only when
    dbt executes (`execute`): a parse never sees it, so a new day does not invalidate dbt's
    partial parse the way a changed `--vars` does. The var `as_of` (`dbt build --vars`)
    still wins when given, for running dbt by hand. -#}

{% macro as_of_date() %}
    {%- set raw = var('as_of', '') -%}
    {%- if (raw is none or (raw | string | trim) == '') and execute -%}
        {%- set raw = env_var('LICENSING_AS_OF', '') -%}
    {%- endif -%}
    {%- set text = '' if raw is none else (raw | string | trim) -%}
    {%- if text == '' -%}
        {{ return(modules.datetime.datetime.now(modules.pytz.utc).date()) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', text) -%}
        {{ exceptions.raise_compiler_error("as-of day (var 'as_of' or LICENSING_AS_OF) must be a day like 2026-11-27, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{ return(modules.datetime.date.fromisoformat(text)) }}
{% endmacro %}

{% macro as_of_cutoff() %}
    {%- set next_day = as_of_date() + modules.datetime.timedelta(days=1) -%}
    cast('{{ next_day.isoformat() }} 00:00:00' as timestamp)
{%- endmacro %}
