"""Finding code by name: ``specs`` resolves a registered name, ``package.module:Attr`` or
``path/file.py:Attr`` (for handlers and models alike); ``handlers`` finds plugin classes (built-ins,
the ``mnist_ignite.handlers`` entry points, specs) and builds them with their options.

Below the plugin contract and the settings: the command line reads enabled handlers' options
through it, and it imports neither torch nor Ignite.
"""
