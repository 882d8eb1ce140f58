"""The store, the results database: schema and migrations, transactions and claims, what it can
hold, and moving results as files."""
