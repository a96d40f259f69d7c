"""The report page's CSS, inlined into report.html (no external stylesheet or font)."""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafafa; line-height: 1.45; }
main { max-width: 980px; margin: 0 auto; padding: 24px 28px 64px; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin-top: 1.4em; }
.meta { color: #555; font-size: 0.92em; }
table { border-collapse: collapse; margin: 10px 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f2f4f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-complete { color: #16713a; font-weight: 600; }
.status-not-run { color: #8a8a8a; }
.status-incomplete { color: #a15c00; font-weight: 600; }
.standins { background: #fff6e0; border-left: 4px solid #e0a100; padding: 8px 14px; }
.standins li { margin: 3px 0; }
.missing { color: #8a8a8a; font-style: italic; }
pre { background: #f5f5f7; padding: 10px; overflow-x: auto; font-size: 0.82em; }
details { margin: 6px 0; }
summary { cursor: pointer; }
svg.chart { display: block; margin: 8px 0 16px; max-width: 100%; height: auto; }
svg .axis { stroke: #444; stroke-width: 1; }
svg .grid { stroke: #e4e4e4; stroke-width: 1; }
svg .tick { font-size: 11px; fill: #444; }
svg .label { font-size: 12px; fill: #222; }
svg .value { font-size: 11px; fill: #111; }
"""
