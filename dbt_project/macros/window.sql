{#-
  The date window of a partitioned run, from the vars `start_date` / `end_date` (inclusive ISO
  dates). Returns [start, end] as strings, or none for "every date". One macro so that the rows a
  model selects and the range the plugin replaces in Delta can never disagree.
-#}
{%- macro slipway_window() -%}
  {%- set start = var('start_date', none) -%}
  {%- set end = var('end_date', none) -%}
  {%- if start is none and end is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- if start is none or end is none -%}
    {{ exceptions.raise_compiler_error("pass both start_date and end_date, got " ~ start ~ " .. " ~ end) }}
  {%- endif -%}
  {%- set start = start | string -%}
  {%- set end = end | string -%}
  {%- set first = modules.datetime.date.fromisoformat(start) -%}
  {%- set last = modules.datetime.date.fromisoformat(end) -%}
  {%- if first > last -%}
    {{ exceptions.raise_compiler_error("start_date " ~ start ~ " is after end_date " ~ end) }}
  {%- endif -%}
  {{ return([first.isoformat(), last.isoformat()]) }}
{%- endmacro -%}

{#- A SQL predicate keeping `column` inside the run's window (true when there is no window). -#}
{%- macro slipway_window_filter(column='date') -%}
  {%- set window = slipway_window() -%}
  {%- if window is none -%}
    true
  {%- else -%}
    {{ column }} between date '{{ window[0] }}' and date '{{ window[1] }}'
  {%- endif -%}
{%- endmacro -%}
