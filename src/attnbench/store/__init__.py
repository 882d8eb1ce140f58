"""The results database: schema and migrations, the store and its transactions, what it can hold,
and moving results as files."""
