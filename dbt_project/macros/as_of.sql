{#- The run's as-of day. Events strictly before the start of the next day (UTC) are evaluated;
    later ones stay in usage_events but are outside this run. Computed here, not with the
    database's current_date, so every model, test and dialect sees the same day. -#}

{% macro as_of_date() %}
    {%- set raw = var('as_of', '') -%}
    {%- set text = '' if raw is none else (raw | string | trim) -%}
    {%- if text == '' -%}
        {{ return(modules.datetime.datetime.now(modules.pytz.utc).date()) }}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$', text) -%}
        {{ exceptions.raise_compiler_error("var 'as_of' must be a day like 2026-11-27, got '" ~ text ~ "'") }}
    {%- endif -%}
    {{ return(modules.datetime.date.fromisoformat(text)) }}
{% endmacro %}

{% macro as_of_cutoff() %}
    {%- set next_day = as_of_date() + modules.datetime.timedelta(days=1) -%}
    cast('{{ next_day.isoformat() }} 00:00:00' as timestamp)
{%- endmacro %}
