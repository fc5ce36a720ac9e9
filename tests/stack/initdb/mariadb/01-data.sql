CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(64) NOT NULL, qty INT NOT NULL);
INSERT INTO orders (item, qty) VALUES ('keyboard', 2), ('mouse', 5), ('monitor', 1), ('cable', 12);
