-- Each lesson owns a database (its namespace) and resets it, so the examples user may create them.
GRANT ALL PRIVILEGES ON *.* TO 'examples'@'%';
