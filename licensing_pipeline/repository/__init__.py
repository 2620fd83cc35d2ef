"""The licensing repository: findings and their history, through SQLAlchemy."""
