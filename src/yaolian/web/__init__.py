"""Web pages served with the API: the consumer query page (药品追溯消费者查询), the receiving
check (扫码验收), the trace graph and the regulator dashboard (监管看板). Pages are static HTML
and JavaScript reading the JSON API; their libraries (Cytoscape.js, ECharts) are vendored, so
nothing loads from elsewhere."""
