"""The core: what every run needs, and nothing of any particular handler.

``device`` (where and in which precision), ``step`` (the update), ``engines`` (Ignite trainer and
evaluator, their metrics), ``data`` (MNIST and its pipelines), ``history`` (the epoch rows),
``files`` (atomic writes, safe loads), ``rundir`` (the run folder), ``results`` (results.json and
the run's clock), ``launch`` (``train(config)``: one run, wired and run).
"""
