{#- Generic data tests the project needs (no dbt packages are installed). -#}

{#- Each combination of the columns appears at most once: the grain of a model. -#}
{% test unique_combination(model, combination_of_columns) %}
    {%- set columns = combination_of_columns | join(', ') -%}
    select {{ columns }}, count(*) as occurrences
    from {{ model }}
    group by {{ columns }}
    having count(*) > 1
{% endtest %}

{#- Usage quantities and counts are never negative; a negative one means a bad value got in. -#}
{% test non_negative(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} < 0
{% endtest %}
