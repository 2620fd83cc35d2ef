{#- The few SQL bits that differ between the warehouses (DuckDB today, PostgreSQL next).
    Models call these; everything else in the models is standard SQL. -#}

{#- The text of data.<key> in a JSON-text column; key is a SQL expression (a column). -#}
{% macro json_text(json_column, key) -%}
    {{ return(adapter.dispatch('json_text', 'licensing_warehouse')(json_column, key)) }}
{%- endmacro %}

{% macro duckdb__json_text(json_column, key) -%}
    json_extract_string({{ json_column }}, '$.' || {{ key }})
{%- endmacro %}

{% macro postgres__json_text(json_column, key) -%}
    (cast({{ json_column }} as jsonb) ->> {{ key }})
{%- endmacro %}

{% macro default__json_text(json_column, key) -%}
    {{ exceptions.raise_compiler_error("json_text has no implementation for " ~ adapter.type()) }}
{%- endmacro %}


{#- A number from text, or null when the text is not a number (never an error). -#}
{% macro to_number(text) -%}
    {{ return(adapter.dispatch('to_number', 'licensing_warehouse')(text)) }}
{%- endmacro %}

{% macro duckdb__to_number(text) -%}
    try_cast({{ text }} as double)
{%- endmacro %}

{% macro postgres__to_number(text) -%}
    case
        when {{ text }} ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$'
        then cast({{ text }} as double precision)
    end
{%- endmacro %}

{% macro default__to_number(text) -%}
    {{ exceptions.raise_compiler_error("to_number has no implementation for " ~ adapter.type()) }}
{%- endmacro %}


{#- The calendar month (UTC) of a UTC timestamp, as text 'YYYY-MM'. -#}
{% macro month_period(timestamp) -%}
    {{ return(adapter.dispatch('month_period', 'licensing_warehouse')(timestamp)) }}
{%- endmacro %}

{% macro duckdb__month_period(timestamp) -%}
    strftime({{ timestamp }}, '%Y-%m')
{%- endmacro %}

{% macro postgres__month_period(timestamp) -%}
    to_char({{ timestamp }}, 'YYYY-MM')
{%- endmacro %}

{% macro default__month_period(timestamp) -%}
    {{ exceptions.raise_compiler_error("month_period has no implementation for " ~ adapter.type()) }}
{%- endmacro %}
