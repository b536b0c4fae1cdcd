"""Recording: integer codes, Arrow schemas, columnar buffers and the run-directory writer."""
