CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, balance numeric(12,2) NOT NULL);
INSERT INTO customers (name, balance)
  SELECT 'customer ' || g, (g * 7 % 1000) / 3.0 FROM generate_series(1, 1000) g;
CREATE ROLE reporting LOGIN PASSWORD 'reporting-pw';
GRANT SELECT ON customers TO reporting;
