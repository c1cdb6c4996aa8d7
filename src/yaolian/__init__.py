"""yaolian (药链): one stream of pharmaceutical supply-chain events, many views.

Layers follow the data flow: ``codes`` → ``epcis`` → ``store`` → ``trace``/``verify`` →
``supply`` → ``api``/``web``/``cli``.
"""

__version__ = "0.1.0"
