"""Built-in plugins for mnist-ignite, one module per concept; each attaches alone.

Installed as ``mnist_ignite.handlers`` (the folder sits at the top of the repository). Modules import
torch and Ignite inside ``attach``, so ``--help`` and ``--list-handlers`` stay instant.

=================  =====================================================
lr_schedule        step (the seed's StepLR), onecycle, cosine, plateau, warmup
checkpoint         Ignite Checkpoint + DiskSaver: last N, best by test accuracy, resume
history            metrics.json, metrics.csv, the seed's results dict
progress           tqdm bar per epoch: loss, accuracy %, images/s, ETA; each epoch's line stays
early_stopping     Ignite EarlyStopping on test accuracy
nan_guard          stops on a NaN/Inf loss (Ignite TerminateOnNan)
time_limit         stops cleanly after a wall-clock budget (Ignite TimeLimit)
plots              matplotlib PNGs: metrics, samples, misclassified, confusion matrix
visdom/            live Visdom dashboard with an offline log (plugin, client, assets: its front-end)
trackers/          tensorboard (Ignite TensorboardLogger), mlflow; base: what they share (never stop training)
=================  =====================================================
"""
