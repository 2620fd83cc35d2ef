{#- Generic data tests the project needs (no dbt packages are installed). -#}

{#- Each combination of the columns appears at most once: the grain of a model. -#}
{% test unique_combination(model, combination_of_columns, rebuilt_days=none) %}
    {#- rebuilt_days: the model's DATE column; only the days this nightly build rewrote are
        tested (every row when it was built whole), so the test costs what the night costs.
        The days it kept passed when they were written. -#}
    {%- set columns = combination_of_columns | join(', ') -%}
    select {{ columns }}, count(*) as occurrences
    from {{ model }}
    {%- if rebuilt_days %}
    where {{ in_days(rebuilt_days, nightly_changed_days() if execute else none) }}
    {%- endif %}
    group by {{ columns }}
    having count(*) > 1
{% endtest %}

{#- Usage quantities and counts are never negative; a negative one means a bad value got in. -#}
{% test non_negative(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
