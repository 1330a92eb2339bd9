"""What users see of a run: the console report (header, epoch lines, footer) and the figures."""
