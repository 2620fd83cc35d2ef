{#- The days a build (re)writes in a day-keyed model, and their months: one mechanism for the
    nightly models and the day-partitioned history.

    A model built incrementally deletes the days it writes (its pre-hook, delete_build_days)
    and selects only those (in_build_days / in_build_months), so each day is rebuilt whole
    and every other day keeps its rows.
    - history models: the partition range, history_first_day() to the as-of day;
    - nightly models: the days whose events changed since the last nightly build succeeded,
      from the usage registry (main.usage_batch_days: the days each batch added, and those
      of the batches they replaced), plus the days between that build's as-of day and this
      one's (events that came into or went out of the evaluated window). No build state yet
      (a new warehouse, a full refresh, usage written by other means): every day.
    Read only when dbt executes, like the as-of day, so nothing of this costs a re-parse. -#}

{#- None: every day; else the list of days ('YYYY-MM-DD'), possibly empty. -#}
{% macro build_days() %}
    {%- if not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if 'daily_partitioned' in model.tags -%}
        {%- set first = history_first_day() -%}
        {%- set last = as_of_date() -%}
        {{ return(day_range(first, last)) }}
    {%- endif -%}
    {{ return(nightly_changed_days()) }}
{% endmacro %}

{% macro day_range(first, last) %}
    {%- set days = [] -%}
    {%- for n in range((last - first).days + 1) -%}
        {%- do days.append((first + modules.datetime.timedelta(days=n)).isoformat()) -%}
    {%- endfor -%}
    {{ return(days) }}
{% endmacro %}

{% macro nightly_changed_days() %}
    {%- set relations = {} -%}
    {%- for name in ['usage_build_state', 'usage_batch_days', 'usage_files'] -%}
        {%- set found = adapter.get_relation(database=target.database, schema=target.schema, identifier=name) -%}
        {%- if found is none -%}
            {{ return(none) }}
        {%- endif -%}
        {%- do relations.update({name: found}) -%}
    {%- endfor -%}
    {%- set state = run_query(
        "select through_batch, evaluated_through from " ~ relations['usage_build_state']
    ) -%}
    {%- if state.rows | length == 0 -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set through = state.rows[0][0] | int -%}
    {%- set previous = modules.datetime.date.fromisoformat((state.rows[0][1] | string)[:10]) -%}
    {%- set changed = run_query(
        "select distinct usage_date from " ~ relations['usage_batch_days']
        ~ " where batch_id > " ~ through
        ~ " or batch_id in (select batch_id from " ~ relations['usage_files']
        ~ " where replaced_by > " ~ through ~ ")"
    ) -%}
    {%- set days = [] -%}
    {%- for row in changed.rows -%}
        {%- do days.append((row[0] | string)[:10]) -%}
    {%- endfor -%}
    {%- set as_of = as_of_date() -%}
    {%- set window = [previous, as_of] | sort -%}
    {%- if window[0] < window[1] -%}
        {%- do days.extend(day_range(window[0] + modules.datetime.timedelta(days=1), window[1])) -%}
    {%- endif -%}
    {{ return(days | unique | sort | list) }}
{% endmacro %}

{#- A predicate on a DATE column: the build's days. -#}
{% macro in_build_days(column) -%}
    {{ in_days(column, build_days()) }}
{%- endmacro %}

{% macro in_days(column, days) -%}
    {%- if days is none -%}
        1 = 1
    {%- elif days | length == 0 -%}
        1 = 0
    {%- else -%}
        {{ column }} in ({% for day in days %}cast('{{ day }}' as date){% if not loop.last %}, {% endif %}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- A predicate on a TIMESTAMP column: within the build's days (the range first lets the
    warehouse skip blocks of other days). -#}
{% macro in_build_days_time(column) -%}
    {{ in_days_time(column, build_days()) }}
{%- endmacro %}

{% macro in_days_time(column, days) -%}
    {%- if days is none or days | length == 0 -%}
        {{ in_days(column, days) }}
    {%- else -%}
        {%- set last = modules.datetime.date.fromisoformat(days[-1]) + modules.datetime.timedelta(days=1) -%}
        {{ column }} >= cast('{{ days[0] }} 00:00:00' as timestamp)
        and {{ column }} < cast('{{ last.isoformat() }} 00:00:00' as timestamp)
        and {{ in_days('cast(' ~ column ~ ' as date)', days) }}
    {%- endif -%}
{%- endmacro %}

{#- A predicate on a 'YYYY-MM' column: the months of the build's days. -#}
{% macro in_build_months(column) -%}
    {%- set days = build_days() -%}
    {%- if days is none -%}
        1 = 1
    {%- elif days | length == 0 -%}
        1 = 0
    {%- else -%}
        {%- set months = [] -%}
        {%- for day in days -%}
            {%- do months.append(day[:7]) -%}
        {%- endfor -%}
        {{ column }} in ({% for month in months | unique %}'{{ month }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- The pre-hook of an incremental day-keyed model: delete what this build writes, so a day
    (or month: grain='month') is written once whatever ran before. -#}
{% macro delete_build_days(relation, column, grain='day') %}
    {%- if is_incremental() -%}
        delete from {{ relation }}
        where {{ in_build_months(column) if grain == 'month' else in_build_days(column) }}
    {%- endif -%}
{% endmacro %}
