"""What the report is drawn with: inline SVG charts and the page's CSS, no external assets."""
